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


# Every parameter of each row's model with its 4-class head, counted once
# by hand (python -c "...sum(p.numel() for p in model.parameters())") and
# pinned: a row that builds another model (one candidate kernel, no
# Dy-MBConv stage, ECA for SAR, ...) changes its count.
PARAMS = {
    'effdsp_all.py': 16_350_828,
    'ablation/effdsp_all.py': 16_350_828,
    'ablation/base_all.py': 20_182_612,
    'ablation/dydropblock_all.py': 20_182_612,
    'ablation/pfl_all.py': 20_182_612,
    'ablation/dyodconv_all.py': 20_042_484,
    'ablation/sar_all.py': 16_490_956,
    'attention/efficientnetv2-s_se_all.py': 20_182_612,
    'attention/efficientnetv2-s_eca_all.py': 16_482_674,
    'attention/efficientnetv2-s_cbam_all.py': 21_896_792,
    'attention/efficientnetv2-s_sar_all.py': 16_490_956,
}

# What each DSP piece changes in the merged ``model`` dict of the base row
# (key path: (base value, row value); MISSING where a key is absent).
MISSING = '<absent>'
PIECES = {
    'sar': {'backbone.attention_cfg.type': ('SE', 'SAR')},
    'eca': {'backbone.attention_cfg.type': ('SE', 'ECA')},
    'cbam': {'backbone.attention_cfg.type': ('SE', 'CBAM')},
    'dydropblock': {
        'backbone.dropblock_cfg': (None, MISSING),
        'backbone.dropblock_cfg.start': (MISSING, 0.0),
        'backbone.dropblock_cfg.final': (MISSING, 0.1),
        'backbone.dropblock_cfg.block_size': (MISSING, 7),
    },
    'dyodconv': {'backbone.dy_stages': ((), (2, 3))},
    'pfl': {
        'head.loss.type': ('CrossEntropyLoss', 'PolyFocalLoss'),
        'head.loss.gamma': (MISSING, 2.0),
        'head.loss.omega': (MISSING, 'auto'),
    },
}
# Table 3 rows put one attention into the base, table 4 rows one piece;
# the SE row is the base itself and the full model has the four pieces.
ROW_PIECES = {
    'ablation/base_all.py': (),
    'attention/efficientnetv2-s_se_all.py': (),
    'attention/efficientnetv2-s_eca_all.py': ('eca', ),
    'attention/efficientnetv2-s_cbam_all.py': ('cbam', ),
    'attention/efficientnetv2-s_sar_all.py': ('sar', ),
    'ablation/sar_all.py': ('sar', ),
    'ablation/dydropblock_all.py': ('dydropblock', ),
    'ablation/dyodconv_all.py': ('dyodconv', ),
    'ablation/pfl_all.py': ('pfl', ),
    'ablation/effdsp_all.py': ('sar', 'dydropblock', 'dyodconv', 'pfl'),
    'effdsp_all.py': ('sar', 'dydropblock', 'dyodconv', 'pfl'),
}


def _flat(value, prefix=''):
    """``{dotted key path: leaf}`` of a config dict; lists become tuples and
    an empty dict is a leaf."""
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f'{prefix}.{key}' if prefix else key))
        return out
    return {prefix: tuple(value) if isinstance(value, list) else value}


def _model_diff(path, base='ablation/base_all.py'):
    a = _flat(Config.fromfile(osp.join(CONFIGS, base)).model.to_dict())
    b = _flat(Config.fromfile(path).model.to_dict())
    return {
        k: (a.get(k, MISSING), b.get(k, MISSING))
        for k in set(a) | set(b) if a.get(k, MISSING) != b.get(k, MISSING)
    }


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
    assert _params(model) == PARAMS[osp.relpath(path, CONFIGS)]
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
    assert _params(model) == 17_626_704
    assert round(_params(model) / 1e6, 2) == 17.63


def test_base_row_and_full_job():
    base = Config.fromfile(osp.join(CONFIGS, 'ablation', 'base_all.py'))
    full = Config.fromfile(osp.join(CONFIGS, 'effdsp_all.py'))
    b = base.model.backbone
    assert (b.attention_cfg.type, tuple(b.dy_stages), b.dropblock_cfg) == \
        ('SE', (), None)
    assert base.model.head.loss.type == 'CrossEntropyLoss'
    assert full.model.head.loss.type == 'PolyFocalLoss'
    hook_types = {h.type for h in full.custom_hooks}
    assert {'ClassFrequencyOmegaHook', 'ODConvTemperatureHook',
            'NaNLossHook', 'EpochSeedHook'} <= hook_types


@pytest.mark.parametrize('name', sorted(ROW_PIECES))
def test_each_row_differs_from_base_by_its_pieces(name):
    """The merged ``model`` dict of each table-3 / table-4 row differs from
    the base row's in exactly the key paths of its piece(s), with the
    values of the full model."""
    assert set(ROW_PIECES) == {osp.relpath(p, CONFIGS) for p in ROWS}
    expected = {}
    for piece in ROW_PIECES[name]:
        expected.update(PIECES[piece])
    assert _model_diff(osp.join(CONFIGS, name)) == expected
