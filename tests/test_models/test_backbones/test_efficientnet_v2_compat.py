"""The checks of MMPretrain's EfficientNetV2 backbone test, run against
EfficientNetDSP: with every DSP piece off, and with the DSP defaults.

MMPretrain's test (tests/test_models/test_backbones/test_efficientnet_v2.py,
not shipped in its wheel) checks argument errors, frozen stages, norm_eval
and the feature shapes of 'b0' and 'm' with BN and GN. The same checks are
written here again for EfficientNetDSP, on smaller inputs where the shapes
scale with the input (CPU time).
"""
import pytest
import torch
from mmpretrain.models import EfficientNetV2
from torch.nn.modules import GroupNorm
from torch.nn.modules.batchnorm import _BatchNorm

import mmdsp  # noqa: F401  (registers the backbone and the bricks)
from mmdsp.models.backbones import EfficientNetDSP

# Every DSP piece off (EfficientNetV2 itself), and the DSP defaults.
VARIANTS = {
    'off': dict(attention_cfg=dict(type='SE'), dy_stages=(),
                dropblock_cfg=None),
    'dsp': dict(),
}
CHANNELS = dict(
    b0=[32, 16, 32, 48, 96, 112, 192, 1280],
    m=[24, 24, 48, 80, 160, 176, 304, 512, 1280])


def _norm_layers_train(model, mode):
    return all(m.training == mode for m in model.modules()
               if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_arguments_as_efficientnetv2(variant):
    dsp = VARIANTS[variant]
    model = EfficientNetDSP(arch='b0', **dsp)
    with pytest.raises(TypeError):
        model.init_weights(pretrained=0)  # init_weights takes no argument
    with pytest.raises(AssertionError):
        EfficientNetDSP(arch='others', **dsp)
    with pytest.raises(ValueError):
        EfficientNetDSP(arch='b1', frozen_stages=12, **dsp)


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_frozen_stages_and_norm_eval_as_efficientnetv2(variant):
    model = EfficientNetDSP(arch='b0', frozen_stages=7, **VARIANTS[variant])
    model.init_weights()
    model.train()
    for layer in model.layers[:7]:
        assert _norm_layers_train(layer, False)
        assert not any(p.requires_grad for p in layer.parameters())
    assert all(p.requires_grad for p in model.layers[7].parameters())

    model = EfficientNetDSP(arch='b0', norm_eval=True, **VARIANTS[variant])
    model.init_weights()
    model.train()
    assert _norm_layers_train(model, False)


@pytest.mark.parametrize('variant', sorted(VARIANTS))
@pytest.mark.parametrize('arch, norm', [('b0', 'BN'), ('b0', 'GN'),
                                        ('m', 'BN'), ('m', 'GN')])
def test_feature_shapes_as_efficientnetv2(variant, arch, norm):
    norm_cfg = dict(type='GN', num_groups=2, requires_grad=True) \
        if norm == 'GN' else dict(type='BN', eps=1e-3, momentum=0.1)
    channels = CHANNELS[arch]
    indices = tuple(range(len(channels)))
    kwargs = dict(arch=arch, out_indices=indices, norm_cfg=norm_cfg)
    model = EfficientNetDSP(**kwargs, **VARIANTS[variant])
    if norm == 'GN':
        norms = [m for m in model.modules()
                 if isinstance(m, (GroupNorm, _BatchNorm))]
        assert norms and all(isinstance(m, GroupNorm) for m in norms)
    model.init_weights()
    model.train()
    feats = model(torch.randn(1, 3, 64, 64))
    # EfficientNetV2's strides: 2 at the stem and at the stride-2 rows.
    reference = EfficientNetV2(**kwargs)
    strides = [2] + [row[2] for row in reference.arch]
    size = 64
    assert len(feats) == len(channels)
    for feat, c, s in zip(feats, channels, strides):
        size //= s
        assert feat.shape == (1, c, size, size)
