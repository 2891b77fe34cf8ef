import os.path as osp

from setuptools import find_packages, setup


def parse_requirements(fname='requirements/runtime.txt'):
    """Read the pinned stack, so it is written down in one place only."""
    here = osp.dirname(osp.abspath(__file__))
    with open(osp.join(here, fname)) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def get_version():
    here = osp.dirname(osp.abspath(__file__))
    scope = {}
    with open(osp.join(here, 'mmdsp', 'version.py')) as f:
        exec(compile(f.read(), 'mmdsp/version.py', 'exec'), scope)
    return scope['__version__']


setup(
    name='mmdsp',
    version=get_version(),
    description='EfficientNet-DSP leukemia classifier as an MMPretrain plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    python_requires='>=3.11',
    install_requires=parse_requirements(),
    extras_require={'tests': parse_requirements('requirements/tests.txt')},
    license='Apache License 2.0',
)
