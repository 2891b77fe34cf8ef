"""The table-2 baselines: same data and schedule as DSP, the paper's sizes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmdsp  # noqa: F401  (registers GoogLeNet and the transforms)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs')

# name: (paper Params in M with 1000 classes (table 2), forward input size).
# AlexNet's classifier flattens a 6x6 map, so it needs 224 px; the others
# run at 64 px (ViT resizes its position embedding to 4x4 patches).
BASELINES = {
    'resnet34_all': (21.79, 64),
    'alexnet_all': (61.10, 224),
    'googlenet_all': (6.62, 64),
    'vit_all': (57.30, 64),
    'efficientnet-b0_all': (5.28, 64),
    'efficientnetv2-s_all': (21.45, 64),
    'shufflenetv2_all': (1.37, 64),
}
# Relative tolerance on the 1000-class parameter count: the paper rounds to
# 0.01 M, so 0.5 % is loose for rounding and tight enough to tell variants
# apart (ShuffleNetV2 x1.0 is 2.28 M, ViT-B/16 86.6 M, ViT-S 48.8 M).
PARAMS_RTOL = 5e-3



def _load(name):
    return Config.fromfile(osp.join(CONFIGS, 'baselines', f'{name}.py'))


def _final_linear(model, num_classes):
    linears = [
        m for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.out_features == num_classes
    ]
    assert linears, 'no classification layer found'
    return linears[-1]


def test_every_baseline_config_is_tested():
    import glob
    found = {
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(CONFIGS, 'baselines', '*.py'))
    }
    assert found == set(BASELINES)


@pytest.mark.parametrize('name', sorted(BASELINES))
def test_same_data_and_schedule_as_dsp(name):
    cfg = _load(name)
    data = Config.fromfile(
        osp.join(CONFIGS, '_base_', 'datasets', 'all_leukemia.py'))
    sched = Config.fromfile(
        osp.join(CONFIGS, '_base_', 'schedules', 'all_100e.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'data_preprocessor', 'val_evaluator', 'test_evaluator'):
        assert cfg[key] == data[key], key
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert cfg[key] == sched[key], key
    assert cfg.custom_imports['imports'] == ['mmdsp']


@pytest.mark.parametrize('name', sorted(BASELINES))
def test_build_params_and_forward(name):
    paper_params, size = BASELINES[name]
    cfg = _load(name)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)

    params = sum(p.numel() for p in model.parameters())
    fc = _final_linear(model, 4)
    # The paper counts 1000-class ImageNet heads: swap 4 outputs for 1000.
    params_1000 = params + (1000 - 4) * (fc.in_features + 1)
    if name == 'vit_all':
        # Full count 58.22 M. The paper's 57.30 M is the count without the
        # cls token and position embedding (parameters, not layers, so
        # layer-hook counters miss them) and with our 4-class head.
        assert params_1000 / 1e6 == pytest.approx(58.22, abs=0.01)
        backbone = model.backbone
        hooked = params - backbone.cls_token.numel() \
            - backbone.pos_embed.numel()
        assert hooked / 1e6 == pytest.approx(paper_params, abs=0.01)
    else:
        assert params_1000 / 1e6 == pytest.approx(
            paper_params, rel=PARAMS_RTOL)

    model.train()
    inputs = torch.rand(2, 3, size, size)
    samples = [DataSample().set_gt_label(i) for i in (0, 3)]
    losses = model(inputs, samples, mode='loss')
    # cal_acc: the training accuracy of figure 8 is logged with the loss.
    assert set(losses) >= {'loss', 'accuracy_top-1'}
    assert torch.isfinite(losses['loss'])
    model.eval()
    with torch.no_grad():
        assert model(inputs[:1], mode='tensor').shape == (1, 4)
