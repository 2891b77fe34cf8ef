"""One input size for every pipeline: the root ``img_size`` key."""
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdsp.datasets.img_size import apply_img_size, set_dataset_img_size
from mmdsp.engine.hooks import ImgSizeHook

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _resize_scales(cfg):
    return [step['scale'] for name in LOADERS
            for step in cfg[name]['dataset']['pipeline']
            if step['type'] == 'Resize']


def test_base_config_has_one_size(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'effdsp_all.py'))
    assert cfg.img_size == 224
    assert _resize_scales(cfg) == [(224, 224)] * 3
    cfg.merge_from_dict(dict(img_size=96))  # what --cfg-options does
    apply_img_size(cfg)
    assert _resize_scales(cfg) == [(96, 96)] * 3


def test_demo_config_inherits_the_default_pipelines(repo_root):
    demo = Config.fromfile(
        osp.join(repo_root, 'configs', 'demo', 'effdsp_synthetic.py'))
    real = Config.fromfile(osp.join(repo_root, 'configs', 'effdsp_all.py'))
    assert demo.img_size != real.img_size
    # The dataset base's pipelines, not a copy at another size.
    assert demo.train_dataloader.dataset.pipeline == real.train_pipeline
    for name in ('val_dataloader', 'test_dataloader'):
        assert demo[name].dataset.pipeline == real.test_pipeline
    assert demo.test_dataloader.dataset.ann_file == 'test.txt'
    apply_img_size(demo)
    assert _resize_scales(demo) == [(demo.img_size, ) * 2] * 3


def test_apply_img_size_follows_dataset_wrappers_and_checks_the_value():
    inner = dict(type='X', pipeline=[dict(type='Resize', scale=(224, 224))])
    cfg = dict(img_size=64,
               train_dataloader=dict(dataset=dict(
                   type='ConcatDataset',
                   datasets=[dict(type='RepeatDataset', dataset=inner)])))
    apply_img_size(cfg)
    assert inner['pipeline'][0]['scale'] == (64, 64)
    with pytest.raises(ValueError, match='img_size'):
        apply_img_size(dict(img_size='64'))
    assert apply_img_size(dict(a=1)) == dict(a=1)  # no key: untouched


def _built_dataset(tmp_path, tools):
    from mmpretrain.registry import DATASETS
    data = tools.write_tree(str(tmp_path / 'data'), per_class=2, size=40)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return DATASETS.build(
            dict(type='CustomDataset', data_root=data,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(224, 224)),
                           dict(type='PackInputs')]))


def test_hook_sets_the_built_pipelines_before_the_run(tmp_path, tools):
    dataset = _built_dataset(tmp_path, tools)
    runner = SimpleNamespace(
        cfg=Config(dict(img_size=24)),
        _train_loop=SimpleNamespace(dataloader=SimpleNamespace(
            dataset=dataset)),
        _val_loop=dict(type='ValLoop'),  # not built yet: skipped
        _test_loop=None,
        logger=logging.getLogger('test_img_size'))
    ImgSizeHook().before_run(runner)
    assert tuple(dataset[0]['inputs'].shape[1:]) == (24, 24)
    runner.cfg = Config(dict())
    ImgSizeHook().before_run(runner)  # no img_size: nothing changes
    assert tuple(dataset[0]['inputs'].shape[1:]) == (24, 24)
    assert set_dataset_img_size(dataset, 32) == 1


def test_cfg_option_reaches_training(tmp_path, tools):
    data = tools.write_tree(str(tmp_path / 'data'), per_class=4, size=40)
    work = tmp_path / 'work'
    _, log = tools.run('train.py', tools.config('tiny_resnet.py'),
                       '--work-dir', work, '--cfg-options', 'img_size=24',
                       'train_cfg.max_epochs=1', env=tools.env(data))
    assert 'img_size=24: Resize of the train/val pipelines set to 24x24' in log
