"""configs/pretrained/: EfficientNet-DSP and EfficientNetV2-S started from an
MMPretrain ImageNet EfficientNetV2-S classifier checkpoint, here one saved
from a locally built classifier (no download)."""
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import save_checkpoint
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the backbone and the bricks)
from mmdsp.models.backbones.efficientnet_dsp import _by_module

CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__))))), 'configs')


@pytest.fixture(scope='module')
def imagenet_checkpoint(tmp_path_factory):
    """An MMPretrain ImageNet EfficientNetV2-S classifier, every tensor
    random (so that a loaded tensor cannot equal the source by chance),
    saved as mmengine saves checkpoints."""
    torch.manual_seed(0)
    # MMPretrain's _base_/models/efficientnet_v2/efficientnetv2_s.py
    classifier = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='EfficientNetV2', arch='s'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=1000, in_channels=1280)))
    state = classifier.state_dict()
    for key, value in state.items():
        state[key] = torch.randn(value.shape) if value.is_floating_point() \
            else torch.full_like(value, 7)
    path = tmp_path_factory.mktemp('ckpt') / 'effv2_s_in1k.pth'
    save_checkpoint(dict(meta=dict(), state_dict=state), str(path))
    return str(path), state


def _build_and_init(config, checkpoint):
    cfg = Config.fromfile(osp.join(CONFIGS, 'pretrained', config))
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert cfg.model.backbone.init_cfg.checkpoint.startswith(
        'https://download.openmmlab.com/mmclassification/v0/efficientnetv2/'
        'efficientnetv2-s_')
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': checkpoint})
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    return model, '\n'.join(records)


def _fits(model, source):
    own = model.backbone.state_dict()
    fits = [
        k for k in own if f'backbone.{k}' in source
        and source[f'backbone.{k}'].shape == own[k].shape
    ]
    return own, fits


def test_effdsp_loads_every_fitting_tensor(imagenet_checkpoint):
    checkpoint, source = imagenet_checkpoint
    model, log = _build_and_init('effdsp_all_in1k.py', checkpoint)
    own, fits = _fits(model, source)
    for key in fits:
        assert torch.equal(own[key], source[f'backbone.{key}']), key
    report = model.backbone.pretrained_report
    assert sorted(report['loaded']) == sorted(fits)
    # what docs/pretrained.md counts
    assert len(fits) == 564 and len(own) == 940
    assert f'EfficientNetDSP: loaded 564 of 940 tensors from {checkpoint}' \
        in log
    not_fitting = [k for k in own if k not in fits]
    assert sorted(not_fitting) == sorted(report['missing'])
    # The log names every tensor that did not fit: mmengine lists the keys
    # (but the BN counters and the ODConv temperature, which loading
    # tolerates), the report the modules.
    for key in not_fitting:
        if not key.endswith(('num_batches_tracked', 'temperature')):
            assert key in log, key
    for module in _by_module(not_fitting):
        assert f'    {module} (' in log, module
    for module in ('layers.4.*.se.conv_h', 'layers.2.*.depthwise_conv.conv',
                   'layers.2.*.depthwise_conv.activate',
                   'layers.2.*.expand_conv.conv'):
        assert module in _by_module(not_fitting)
    # the checkpoint's SE and Fused-MBConv convs are named as unused
    assert 'layers.4.*.se.conv1' in log and 'layers.2.*.conv1.conv' in log


def test_efficientnetv2_loads_the_whole_backbone(imagenet_checkpoint):
    checkpoint, source = imagenet_checkpoint
    model, log = _build_and_init('efficientnetv2-s_all_in1k.py', checkpoint)
    own, fits = _fits(model, source)
    assert fits == list(own)
    for key in own:
        assert torch.equal(own[key], source[f'backbone.{key}']), key
    assert f'load backbone. in model from: {checkpoint}' in log
    assert 'do not match' not in log
    # the 4-class head is new
    assert model.head.fc.weight.shape == (4, 1280)
