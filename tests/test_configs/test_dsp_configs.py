"""The DSP configs: tables 3 and 4 and the main job, one file per row."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models import EfficientNetV2
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs')

ROWS = sorted(
    glob.glob(osp.join(CONFIGS, 'ablation', '*.py')) +
    glob.glob(osp.join(CONFIGS, 'attention', '*.py')) +
    [osp.join(CONFIGS, 'effdsp_all.py')])



def _build(path, **head):
    cfg = Config.fromfile(path)
    cfg.model.head.update(head)
    return cfg, MODELS.build(cfg.model)


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_one_config_per_table_row():
    names = {osp.relpath(p, CONFIGS) for p in ROWS}
    assert names == {
        'effdsp_all.py',
        'ablation/base_all.py', 'ablation/dydropblock_all.py',
        'ablation/pfl_all.py', 'ablation/dyodconv_all.py',
        'ablation/sar_all.py', 'ablation/effdsp_all.py',
        'attention/efficientnetv2-s_se_all.py',
        'attention/efficientnetv2-s_eca_all.py',
        'attention/efficientnetv2-s_cbam_all.py',
        'attention/efficientnetv2-s_sar_all.py',
    }


@pytest.mark.parametrize('path', ROWS, ids=lambda p: osp.relpath(p, CONFIGS))
def test_row_builds_and_runs(path):
    cfg, model = _build(path)
    assert cfg.model.head.num_classes == 4 and cfg.model.head.topk == (1, )
    model.train()
    logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 4)


def test_base_row_is_efficientnetv2_s():
    _, model = _build(osp.join(CONFIGS, 'ablation', 'base_all.py'))
    reference = EfficientNetV2(arch='s')
    ours = model.backbone.state_dict()
    theirs = reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    model.backbone.load_state_dict(theirs, strict=True)


def test_main_job_matches_paper_size():
    # Paper table 2: 17.63 M parameters with a 1000-class head.
    _, model = _build(
        osp.join(CONFIGS, 'effdsp_all.py'), num_classes=1000)
    assert _params(model) / 1e6 == pytest.approx(17.63, rel=0.03)


def test_each_ablation_row_adds_one_piece():
    base = Config.fromfile(osp.join(CONFIGS, 'ablation', 'base_all.py'))
    full = Config.fromfile(osp.join(CONFIGS, 'effdsp_all.py'))
    b, f = base.model.backbone, full.model.backbone
    assert (b.attention_cfg.type, tuple(b.dy_stages), b.dropblock_cfg) == \
        ('SE', (), None)
    assert base.model.head.loss.type == 'CrossEntropyLoss'
    assert full.model.head.loss.type == 'PolyFocalLoss'
    hook_types = {h.type for h in full.custom_hooks}
    assert {'ClassFrequencyOmegaHook', 'ODConvTemperatureHook',
            'NaNLossHook', 'EpochSeedHook'} <= hook_types

    def row(name):
        return Config.fromfile(osp.join(CONFIGS, 'ablation', name)).model

    assert row('dydropblock_all.py').backbone.dropblock_cfg.final == \
        f.dropblock_cfg.final
    assert row('pfl_all.py').head.loss.type == 'PolyFocalLoss'
    assert tuple(row('dyodconv_all.py').backbone.dy_stages) == \
        tuple(f.dy_stages)
    assert row('sar_all.py').backbone.attention_cfg.type == 'SAR'
