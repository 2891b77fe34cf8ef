"""Our configs as a package base: ``_base_ = 'mmdsp::effdsp_all.py'``.

A user's config outside this repository inherits ours the way MMPretrain's
are inherited (``mmpretrain::``), from a source checkout (``mmdsp/.mim/
configs`` links to ``configs/``) and from an installed wheel (a copy).
"""
import glob
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, HOOKS, MODELS, DefaultScope

import mmdsp  # noqa: F401


def _user_config(tmp_path, base, extra=''):
    path = tmp_path / 'user_cfg.py'
    path.write_text(f'_base_ = {base!r}\n{extra}')
    return str(path)


@pytest.mark.parametrize('rel', ['effdsp_all.py', 'ablation/base_all.py'])
def test_package_base_is_our_config(tmp_path, repo_root, rel):
    cfg = Config.fromfile(_user_config(tmp_path, f'mmdsp::{rel}'))
    ours = Config.fromfile(osp.join(repo_root, 'configs', rel))
    # Package bases give their outer module dicts mmengine's `_scope_`.
    assert cfg.model.pop('_scope_') == 'mmdsp'
    assert cfg.model.to_dict() == ours.model.to_dict()
    assert cfg.train_cfg == ours.train_cfg


def test_modules_build_from_the_mmdsp_scope(tmp_path):
    cfg = Config.fromfile(
        _user_config(tmp_path, 'mmdsp::effdsp_all.py',
                     "model = dict(backbone=dict(arch='b0'))\n"))
    # As the Runner does: mmpretrain is the default scope, and the `_scope_`
    # of each module dict switches to mmdsp's registries (mmdsp.registry),
    # which find MMPretrain's and mmdsp's modules through their parents.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
    assert cfg.train_dataloader.dataset._scope_ == 'mmdsp'
    with DATASETS.switch_scope_and_registry('mmdsp') as registry:
        assert registry.scope == 'mmdsp'
        assert registry.get('BloodCellsALL') is not None
    assert type(model).__name__ == 'ImageClassifier'
    assert type(model.backbone).__name__ == 'EfficientNetDSP'
    assert type(model.head.loss_module).__name__ == 'PolyFocalLoss'
    assert 'ODConvTemperatureHook' in {type(h).__name__ for h in hooks}


def test_other_package_prefixes_unchanged(tmp_path):
    cfg = Config.fromfile(
        _user_config(tmp_path, 'mmpretrain::resnet/resnet18_8xb32_in1k.py'))
    assert cfg.model.backbone.depth == 18
    with pytest.raises(AssertionError, match='does not support'):
        Config.fromfile(_user_config(tmp_path, 'nosuchpkg::a/b.py'))


def test_train_a_user_config_with_tools(tmp_path, tools):
    data = str(tmp_path / 'synthetic')
    tools.run('dataset_converters/make_synthetic_all.py', data,
              '--num-per-class', '3', '--size', '48', env=tools.env(data))
    loader = 'dict(num_workers=0, persistent_workers=False)'
    cfg = _user_config(
        tmp_path, 'mmdsp::demo/effdsp_synthetic.py',
        'train_cfg = dict(max_epochs=1)\n'
        f'train_dataloader = {loader}\nval_dataloader = {loader}\n')
    work = tmp_path / 'work'
    _, log = tools.run('train.py', cfg, '--work-dir', work,
                       env=tools.env(data, MMDSP_DEMO_DATA=data))
    assert 'Failed to search registry' not in log
    assert 'odconv_temperature: 30.0000' in log
    assert (work / 'epoch_1.pth').is_file()


def test_wheel_ships_the_configs(tmp_path, repo_root):
    # Built from a copy: an in-tree build leaves build/ and *.egg-info.
    src = str(tmp_path / 'src')
    skip = shutil.ignore_patterns('build', 'work_dirs', 'data', '*.egg-info',
                                  '__pycache__')

    def ignore(folder, names):
        # .git, .venv and the like, but not mmdsp/.mim.
        return skip(folder, names) | {
            n for n in names if n.startswith('.') and n != '.mim'
        }

    shutil.copytree(repo_root, src, symlinks=True, ignore=ignore)
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '-w', str(tmp_path), src
    ], check=True, capture_output=True, cwd=str(tmp_path))
    wheel, = glob.glob(str(tmp_path / 'mmdsp-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    ours = {
        osp.relpath(p, osp.join(repo_root, 'configs'))
        for p in glob.glob(
            osp.join(repo_root, 'configs', '**', '*.py'), recursive=True)
    }
    assert len(ours) > 20
    assert {f'mmdsp/.mim/configs/{p}' for p in ours} <= names
    assert 'mmdsp/.mim/model-index.yml' in names
