import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmpretrain.models.backbones import MobileNetV2, ResNet
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.backbones import PluginBackbone
from mmdsp.models.layers import SAR, SE, DyDropBlock


class Probe(nn.Module):
    """Identity plugin that records its channels and counts its calls."""

    def __init__(self, in_channels):
        super().__init__()
        self.in_channels = in_channels
        self.calls = 0
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x):
        assert x.shape[1] == self.in_channels
        self.calls += 1
        return x * self.gain


def resnet34(**kwargs):
    return dict(type='ResNet', depth=34, out_indices=(0, 1, 2, 3), **kwargs)


def probes(model):
    return [m for m in model.plugins.modules() if isinstance(m, Probe)]


def test_resnet34_probe_places_and_channels():
    torch.manual_seed(0)
    plain = ResNet(depth=34, out_indices=(0, 1, 2, 3))
    plain.eval()  # ResNet.train() returns None: no chaining
    pb = PluginBackbone(
        backbone=copy.deepcopy(plain),
        plugins=[dict(cfg=dict(type=Probe), stages=(2, 3))],
        dummy_size=32).eval()
    # ResNet-34 stages 2, 3 have 6 and 3 blocks of 256 and 512 channels.
    assert list(pb.plugins) == [f'layer3_{i}' for i in range(6)] + [
        f'layer4_{i}' for i in range(3)
    ]
    assert [p.in_channels for p in probes(pb)] == [256] * 6 + [512] * 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(pb(x), plain(x)):
            torch.testing.assert_close(a, b)
    assert all(p.calls == 1 for p in probes(pb))


def test_resnet_sar_state_dict_and_effect():
    torch.manual_seed(0)
    plain = ResNet(depth=18, out_indices=(3, ))
    pb = MODELS.build(
        dict(
            type='PluginBackbone',
            backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
            plugins=[
                dict(
                    cfg=dict(type='SAR'),
                    stages=(2, 3),
                    position='after_block')
            ],
            dummy_size=32))
    keys = set(pb.state_dict())
    inner = {'backbone.' + k for k in plain.state_dict()}
    assert inner <= keys
    assert all(k.startswith('plugins.') for k in keys - inner)
    assert 'plugins.layer3_0.sar0.conv_h.weight' in keys
    # A plain ResNet checkpoint loads strictly into the inner backbone.
    pb.backbone.load_state_dict(plain.state_dict(), strict=True)
    assert isinstance(pb.plugins['layer4_1'].sar0, SAR)
    assert pb.plugins['layer4_1'].sar0.in_channels == 512
    pb.eval()
    plain.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out, ref = pb(x)[0], plain(x)[0]
    assert out.shape == ref.shape == (1, 512, 1, 1)
    assert not torch.allclose(out, ref)
    # Gradients reach the plugins through the hooks.
    pb.train()
    pb(torch.randn(2, 3, 32, 32))[0].sum().backward()
    assert pb.plugins['layer3_0'].sar0.conv_h.weight.grad.abs().sum() > 0


def test_mobilenet_v2_after_stage():
    inner = MobileNetV2(out_indices=(7, ))
    bn_before = {
        k: v.clone()
        for k, v in inner.state_dict().items() if 'running' in k
    }
    pb = PluginBackbone(
        backbone=inner,
        dummy_size=32,
        plugins=[
            dict(cfg=dict(type='SE', ratio=4), position='after_stage'),
            dict(cfg=dict(type=Probe), stages=1, blocks=(0, -1)),
        ])
    # Channel inference ran in eval mode: BN statistics are untouched and
    # the training flag is restored.
    for k, v in inner.state_dict().items():
        if k in bn_before:
            torch.testing.assert_close(v, bn_before[k], rtol=0, atol=0)
    assert pb.training and inner.layer1[0].conv[0].bn.training
    se_channels = [
        pb.plugins[k].se0.in_channels for k in pb.plugins
        if hasattr(pb.plugins[k], 'se0')
    ]
    # Seven inverted-residual stages plus the final 1x1 conv (one block).
    assert se_channels == [16, 24, 32, 64, 96, 160, 320, 1280]
    assert isinstance(pb.plugins['conv2_0'].se0, SE)
    # Stage 1 has two blocks: Probe after both, SE also after the last.
    assert list(pb.plugins['layer2_0']._modules) == ['probe1']
    assert list(pb.plugins['layer2_1']._modules) == ['se0', 'probe1']
    with torch.no_grad():
        out = pb(torch.randn(2, 3, 32, 32))
    assert out[0].shape == (2, 1280, 1, 1)


def test_plugin_without_in_channels():
    pb = PluginBackbone(
        backbone=dict(type='ResNet', depth=18),
        plugins=[dict(cfg=dict(type='DyDropBlock', drop_prob=0.1),
                      stages=3)],
        dummy_size=32)
    drop = pb.plugins['layer4_1'].dy_drop_block0
    assert isinstance(drop, DyDropBlock)
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    dropped = (pb(x)[0] == 0).float().mean()
    assert dropped > 0
    pb.eval()
    assert not drop.training


def test_deepcopy_rebinds_hooks():
    pb = PluginBackbone(
        backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
        plugins=[dict(cfg=dict(type=Probe), stages=3)],
        dummy_size=32).eval()
    twin = copy.deepcopy(pb)
    x = torch.randn(1, 3, 32, 32)
    ref = pb(x)[0]
    with torch.no_grad():
        for p in probes(twin):
            p.gain.fill_(2.0)
    # The copy uses its own plugins; the original is unaffected.
    torch.testing.assert_close(pb(x)[0], ref)
    assert not torch.allclose(twin(x)[0], ref)


def test_bad_configs():
    with pytest.raises(IndexError, match='4 stages'):
        PluginBackbone(
            backbone=dict(type='ResNet', depth=18),
            plugins=[dict(cfg=dict(type='SAR'), stages=(4, ))])
    with pytest.raises(IndexError, match='2 blocks'):
        PluginBackbone(
            backbone=dict(type='ResNet', depth=18),
            plugins=[dict(cfg=dict(type='SAR'), stages=0, blocks=2)])
    with pytest.raises(KeyError, match='stage'):
        PluginBackbone(
            backbone=dict(type='ResNet', depth=18),
            plugins=[dict(cfg=dict(type='SAR'), stage=0)])
    with pytest.raises(KeyError, match='NoSuchBrick'):
        PluginBackbone(
            backbone=dict(type='ResNet', depth=18),
            plugins=[dict(cfg=dict(type='NoSuchBrick'))])
    with pytest.raises(ValueError, match='position'):
        PluginBackbone(
            backbone=dict(type='ResNet', depth=18),
            plugins=[dict(cfg=dict(type='SAR'), position='before_block')])
    with pytest.raises(ValueError, match='stages of Conv2d'):
        PluginBackbone(
            backbone=nn.Conv2d(3, 8, 3), plugins=[dict(cfg=dict(type='SAR'))])
    # SAR's own check names the channels of the offending block.
    with pytest.raises(ValueError, match='in_channels=64'):
        PluginBackbone(
            backbone=dict(type='ResNet', depth=18),
            plugins=[dict(cfg=dict(type='SAR', groups=48), stages=0)])


@pytest.mark.parametrize('name', ['resnet34_sar_all', 'resnet34_odconv_all'])
def test_mixing_configs_build(name, repo_root):
    path = osp.join(repo_root, 'configs', 'mixing', f'{name}.py')
    cfg = Config.fromfile(path)
    assert cfg.model.head.num_classes == 4
    model = MODELS.build(cfg.model).eval()
    backbone = model.backbone
    if 'sar' in name:
        assert isinstance(backbone, PluginBackbone)
        # A SAR after each of ResNet-34's 3 + 4 + 6 + 3 blocks.
        assert len(backbone.plugins) == 16
    else:
        odconv = ROOT_MODELS.get('ODConv2d')
        assert isinstance(backbone.layer1[0].conv1, odconv)
        assert isinstance(backbone.layer4[2].conv2, odconv)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 32, 32), mode='tensor')
    assert logits.shape == (1, 4)
