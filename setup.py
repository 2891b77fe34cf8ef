import os.path as osp

from setuptools import find_packages, setup


def parse_requirements(fname='requirements/runtime.txt'):
    """Read the pinned stack, so it is written down in one place only.

    ``-r other.txt`` lines are followed, relative to ``fname``, as pip does.
    """
    here = osp.dirname(osp.abspath(__file__))
    requirements = []
    with open(osp.join(here, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line.startswith('-r '):
                requirements += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            elif line:
                requirements.append(line)
    return requirements


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
    # `_base_ = 'mmdsp::effdsp_all.py'` reads .mim/configs (a link to configs/
    # in the source tree, copied into wheels), as MMPretrain's `mmpretrain::`.
    package_data={'mmdsp': ['.mim/model-index.yml', '.mim/configs/**/*.py']},
    python_requires='>=3.11',
    install_requires=parse_requirements(),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'cam': parse_requirements('requirements/optional.txt'),
    },
    license='Apache License 2.0',
)
