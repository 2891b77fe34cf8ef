import copy
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmengine.logging import MMLogger
from mmpretrain.models import EfficientNetV2
from mmpretrain.models.backbones.efficientnet import EdgeResidual
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the backbone and the bricks)
from mmdsp.models.backbones.efficientnet_dsp import (DyMBConv,
                                                     EfficientNetDSP,
                                                     FusedMBConvDSP,
                                                     MBConvDSP)
from mmdsp.models.layers import SAR, DyODConv, depth_schedule
from mmdsp.models.layers.attention import CBAM, ECA, SE

# Every DSP piece off: the backbone must be MMPretrain's EfficientNetV2.
OFF = dict(attention_cfg=dict(type='SE'), dy_stages=(), dropblock_cfg=None)
SAR_B0 = dict(type='SAR', groups=32)  # b0's widths are multiples of 32



def _blocks(model, stage):
    return list(model.layers[stage])


@pytest.mark.parametrize('arch', ['s', 'b0'])
def test_off_switch_equals_efficientnetv2(arch):
    torch.manual_seed(0)
    ref = EfficientNetV2(arch=arch, out_indices=(2, 4, 7))
    dsp = EfficientNetDSP(arch=arch, out_indices=(2, 4, 7), **OFF)

    ref_sd, dsp_sd = ref.state_dict(), dsp.state_dict()
    assert [(k, v.shape) for k, v in dsp_sd.items()] == \
        [(k, v.shape) for k, v in ref_sd.items()]
    dsp.load_state_dict(ref_sd, strict=True)
    # the attention slot really is the registry-built SE brick
    assert isinstance(dsp.layers[4][0].se, SE)

    ref.eval()
    dsp.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(ref(x), dsp(x)):
            assert torch.equal(a, b)


@pytest.mark.parametrize('attention', [
    dict(type='SE'), SAR_B0,
    dict(type='ECA'),
    dict(type='CBAM'), None
])
def test_block_choices_forward_backward(attention):
    torch.manual_seed(0)
    # stage 2 is Fused-MBConv in b0's table, stage 4 MBConv: both -> Dy-MBConv
    model = EfficientNetDSP(
        arch='b0',
        attention_cfg=attention,
        dy_stages=(2, 4),
        dropblock_cfg=dict(final=0.1, block_size=3, stages=(2, 3, 4, 5, 6)),
        drop_path_rate=0.1,
        out_indices=(3, 5, 7))
    expected_attention = {
        None: type(None),
        'SE': SE,
        'SAR': SAR,
        'ECA': ECA,
        'CBAM': CBAM
    }[attention and attention['type']]
    assert all(isinstance(b, FusedMBConvDSP) for b in _blocks(model, 3))
    for stage in (2, 4):
        for block in _blocks(model, stage):
            assert isinstance(block, MBConvDSP)
            assert isinstance(block.depthwise_conv, DyODConv)
    for block in _blocks(model, 5) + _blocks(model, 6):
        assert isinstance(block, MBConvDSP)
        assert not isinstance(block.depthwise_conv, DyODConv)
    # attention goes where EfficientNetV2 has SE (stages 4-6), not stage 2
    for stage in (4, 5, 6):
        for block in _blocks(model, stage):
            assert isinstance(getattr(block, 'se', None), expected_attention)
    assert all(not hasattr(b, 'se') for b in _blocks(model, 2))

    model.train()
    x = torch.randn(2, 3, 32, 32)
    outs = model(x)
    assert [o.shape for o in outs] == [(2, 48, 4, 4), (2, 112, 2, 2),
                                       (2, 1280, 1, 1)]
    sum(o.square().mean() for o in outs).backward()
    dy = model.layers[4][1].depthwise_conv
    for p in (dy.conv.weight, dy.conv.kernel_fc.weight, dy.activate.fc2.weight,
              model.layers[2][0].expand_conv.conv.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    if attention is not None:
        grads = [p.grad for p in model.layers[5][0].se.parameters()]
        assert grads and all(g is not None for g in grads)


def test_arch_tables_build_with_dsp_defaults():
    # 'b0'-'b3' and 'm' have expanded widths that 64 does not divide (672,
    # 1056, ...): SAR then gets gcd(64, width) groups.
    for arch in ('b0', 'b2'):
        model = EfficientNetDSP(arch=arch)
        for stage, kind in model.block_kinds.items():
            for block in model.layers[stage] if kind == 'mbconv' else ():
                width = block.depthwise_conv.out_channels
                assert block.se.groups == math.gcd(64, width)
    model = EfficientNetDSP(arch='s')
    assert {b.se.groups for s in (4, 5, 6) for b in model.layers[s]} == {64}


def test_out_indices():
    model = EfficientNetDSP(
        arch='b0', attention_cfg=SAR_B0, out_indices=(0, 1, 2, 3, 4, 5, 6, 7))
    model.eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 32, 32), (16, 32, 32),
                                                  (32, 16, 16), (48, 8, 8),
                                                  (96, 4, 4), (112, 4, 4),
                                                  (192, 2, 2),
                                                  (1280, 2, 2)]
    model = EfficientNetDSP(arch='b0', attention_cfg=SAR_B0, out_indices=-2)
    assert model.out_indices == [6]


def test_frozen_stages():
    model = EfficientNetDSP(
        arch='b0', attention_cfg=SAR_B0, dy_stages=(2, ), frozen_stages=3)
    model.train()
    for i, layer in enumerate(model.layers):
        frozen = i < 3
        assert all(p.requires_grad != frozen for p in layer.parameters())
        assert all(m.training != frozen for m in layer.modules())
    # the Dy-ODConv unit of frozen stage 2 is frozen as well
    dy = model.layers[2][0].depthwise_conv
    assert not dy.conv.weight.requires_grad and not dy.bn.training
    with pytest.raises(ValueError, match='frozen_stages'):
        EfficientNetDSP(arch='b0', attention_cfg=SAR_B0, frozen_stages=9)


def test_dropblock_follows_depth_schedule():
    start, final = 0.02, 0.2
    model = EfficientNetDSP(
        arch='b0',
        attention_cfg=SAR_B0,
        dy_stages=(2, ),
        dropblock_cfg=dict(
            start=start, final=final, block_size=2, stages=(3, 5)))
    depths = [row[0] for row in EfficientNetV2.arch_settings['b0'][:-1]]
    rates = depth_schedule(start, final, sum(depths))
    n = 0
    checked = 0
    for stage, repeat in enumerate(depths, start=1):
        for i in range(repeat):
            block = model.layers[stage][i]
            drop_block = getattr(block, 'drop_block', None)
            if stage in (3, 5):
                assert drop_block.drop_prob == pytest.approx(rates[n])
                assert drop_block.block_size == 2
                assert model.dropblock_rates[(stage, i)] == rates[n]
                checked += 1
            else:
                assert drop_block is None
            n += 1
    assert checked == depths[2] + depths[4]

    # default stages: every MBConv / Dy-MBConv stage, last block at `final`
    model = EfficientNetDSP(
        arch='b0', attention_cfg=SAR_B0, dy_stages=(2, ),
        dropblock_cfg=dict(final=final))
    assert model.dropblock_stages == [2, 4, 5, 6]
    assert model.layers[6][-1].drop_block.drop_prob == pytest.approx(final)
    assert model.layers[1][0].__class__.__name__ == 'EnhancedConvModule'
    assert isinstance(model.layers[3][0], EdgeResidual)
    assert not isinstance(model.layers[3][0], FusedMBConvDSP)


def test_dropblock_masks_block_output():
    torch.manual_seed(0)
    block = MBConvDSP(
        16,
        16,
        64,
        attention_cfg=dict(type='SAR', in_channels=64, groups=8),
        dropblock_cfg=dict(type='DyDropBlock', drop_prob=0.5, block_size=2))
    x = torch.randn(2, 16, 8, 8)
    block.train()
    zero = (block(x) == 0).float()
    assert zero.any()
    # every zero lies in an all-zero 2x2 patch: whole blocks are dropped
    full = (F.avg_pool2d(zero, 2, stride=1) == 1).float()
    covered = F.max_pool2d(F.pad(full, (1, 1, 1, 1)), 2, stride=1)
    assert torch.equal(covered, zero)
    block.eval()
    assert not (block(x) == 0).any()


def test_pretrained_partial_loading(tmp_path):
    torch.manual_seed(0)
    ref = EfficientNetV2(arch='b0')
    ref.init_weights()
    ckpt = tmp_path / 'effv2_b0.pth'
    torch.save({'state_dict': ref.state_dict()}, ckpt)

    model = EfficientNetDSP(
        arch='b0',
        attention_cfg=SAR_B0,
        dy_stages=(2, 4),
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)

    report = model.pretrained_report
    ref_sd, own = ref.state_dict(), model.state_dict()
    fits = [k for k in own if k in ref_sd and ref_sd[k].shape == own[k].shape]
    assert sorted(report['loaded']) == sorted(fits)
    for key in fits:
        assert torch.equal(own[key], ref_sd[key]), key
    # stage 4 MBConv -> Dy-MBConv: depthwise weight seeds the 4 candidates
    key = 'layers.4.1.depthwise_conv.conv.weight'
    assert key in report['seeded']
    for candidate in own[key]:
        assert torch.equal(candidate, ref_sd[key])
    assert 'layers.4.1.depthwise_conv.bn.weight' in report['loaded']
    # stage 2 Fused-MBConv -> Dy-MBConv: nothing fits, all listed
    assert 'layers.2.0.conv1.conv.weight' in report['unexpected']
    assert 'layers.2.0.expand_conv.conv.weight' in report['missing']
    assert 'layers.5.0.se.conv1.conv.weight' in report['unexpected']
    assert 'layers.5.0.se.conv_h.weight' in report['missing']
    log = '\n'.join(r.getMessage() for r in records)
    assert 'layers.2.0.expand_conv.conv.weight' in log
    assert 'layers.5.0.se.conv1.conv.weight' in log
    assert f'loaded {len(fits) + len(report["seeded"])} of' in log

    # a classifier checkpoint needs the prefix; without it nothing fits
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in ref_sd.items()}}, ckpt)
    with pytest.raises(ValueError, match="prefix='backbone.'"):
        model.load_fitting_weights(str(ckpt))
    report = model.load_fitting_weights(str(ckpt), prefix='backbone')
    assert sorted(report['loaded']) == sorted(fits)


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match='arch'):
        EfficientNetDSP(arch='z9')
    with pytest.raises(KeyError, match='attention_cfg.type'):
        EfficientNetDSP(arch='b0', attention_cfg=dict(type='NoSuchAttention'))
    with pytest.raises(ValueError, match='dy_stages contains 9'):
        EfficientNetDSP(arch='b0', attention_cfg=SAR_B0, dy_stages=(9, ))
    with pytest.raises(ValueError, match='dy_stages contains 1'):
        EfficientNetDSP(arch='b0', attention_cfg=SAR_B0, dy_stages=(1, ))
    with pytest.raises(ValueError, match='attention_stages contains 3'):
        EfficientNetDSP(
            arch='b0',
            attention_cfg=SAR_B0,
            dy_stages=(2, ),
            attention_stages=(3, ))
    with pytest.raises(ValueError, match='dropblock_cfg.stages contains 7'):
        EfficientNetDSP(
            arch='b0', attention_cfg=SAR_B0,
            dropblock_cfg=dict(final=0.1, stages=(7, )))
    with pytest.raises(ValueError, match='dropblock_cfg.final'):
        EfficientNetDSP(
            arch='b0', attention_cfg=SAR_B0, dropblock_cfg=dict(final=1.5))
    with pytest.raises(KeyError, match='dy_cfg.type'):
        EfficientNetDSP(
            arch='b0', attention_cfg=SAR_B0, dy_cfg=dict(type='NoSuchConv'))
    # the brick's own complaint comes with the key and the block position
    with pytest.raises(ValueError, match='attention_cfg=.*stage 5 block 1'):
        EfficientNetDSP(arch='b0', attention_cfg=dict(type='SAR', groups=64))


def test_dynamic_conv_flops_are_counted():
    block = DyMBConv(16, 16, 64, dy_cfg=dict(type='DyODConv')).eval()
    for batch in (1, 3):
        flops = FlopAnalyzer(block, torch.randn(batch, 16, 8, 8))
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        # expand 1x1 + depthwise 3x3 (batch-folded grouped conv) + project
        macs = batch * 8 * 8 * (16 * 64 + 64 * 9 + 64 * 16)
        assert flops.by_operator()['conv'] == macs


def test_dsp_default_matches_paper_size():
    model = MODELS.build(dict(type='EfficientNetDSP'))
    assert model.block_kinds == {
        1: 'conv',
        2: 'dy',
        3: 'dy',
        4: 'mbconv',
        5: 'mbconv',
        6: 'mbconv'
    }
    backbone = sum(p.numel() for p in model.parameters())
    head_1000 = 1280 * 1000 + 1000
    # paper table 2: 17.63 M parameters with the ImageNet head; pinned
    # exactly (one candidate kernel, no Dy-MBConv stage or ECA for SAR
    # each change it)
    assert backbone == 16_345_704
    assert round((backbone + head_1000) / 1e6, 2) == 17.63
    model.eval()
    with torch.no_grad():
        out, = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 1280, 1, 1)


def test_dy_mbconv_has_its_own_block_class():
    model = EfficientNetDSP(arch='b0', attention_cfg=SAR_B0, dy_stages=(2, 4))
    for stage in (2, 4):
        assert all(type(b) is DyMBConv for b in model.layers[stage])
    for stage in (5, 6):
        assert all(type(b) is MBConvDSP for b in model.layers[stage])
    # stage 4 was MBConv: its Dy-MBConv blocks keep the attention
    assert isinstance(model.layers[4][0].se, SAR)
    block = DyMBConv(16, 16, 64, attention_cfg=dict(type='ECA',
                                                    in_channels=64))
    assert isinstance(block.depthwise_conv, DyODConv)
    # MMPretrain's module order: expand, depthwise, attention, project
    assert [n for n, _ in block.named_children()] == [
        'drop_path', 'expand_conv', 'depthwise_conv', 'se', 'linear_conv']
    with pytest.raises(TypeError, match='DyMBConv'):
        MBConvDSP(16, 16, 64, dy_cfg=dict(type='DyODConv'))


def test_parsing_is_a_side_effect_free_function():
    from mmdsp.models.backbones._dsp_layout import DSPLayout, parse_dsp_args
    args = dict(
        attention_cfg=dict(type='SAR', groups=32),
        attention_stages=None,
        dy_stages=[4, 2, 2],
        dy_cfg=dict(kernel_num=2),
        dropblock_cfg=dict(final=0.2, stages=(3, 5)))
    before = copy.deepcopy(args)
    layout = parse_dsp_args('b0', EfficientNetV2.arch_settings, **args)
    assert args == before  # the caller's dicts are not touched
    assert isinstance(layout, DSPLayout)
    assert layout == parse_dsp_args('b0', EfficientNetV2.arch_settings,
                                    **args)
    assert layout.dy_stages == (2, 4)
    assert layout.block_kinds == {1: 'conv', 2: 'dy', 3: 'fused', 4: 'dy',
                                  5: 'mbconv', 6: 'mbconv'}
    assert layout.arch_kinds[2] == 'fused' and layout.arch_kinds[4] == \
        'mbconv'
    assert layout.attention_stages == [4, 5, 6]
    assert layout.dy_cfg == dict(kernel_num=2, type='DyODConv')
    assert layout.dropblock_cfg == dict(final=0.2, type='DyDropBlock')
    assert layout.dropblock_stages == [3, 5]
    # the backbone keeps the parsed values as its attributes
    model = EfficientNetDSP(arch='b0', **args)
    for name, value in layout._asdict().items():
        assert getattr(model, name) == value, name


@pytest.mark.parametrize('bad', [
    dict(arch='z9'),
    dict(arch='b0', frozen_stages=9),
    dict(arch='b0', out_indices=(99, )),
])
def test_bad_arguments_raise_as_in_efficientnetv2(bad):
    with pytest.raises(Exception) as theirs:
        EfficientNetV2(**bad)
    with pytest.raises(type(theirs.value)) as ours:
        EfficientNetDSP(**bad, **OFF)
    if bad['arch'] == 'z9':
        # and still the ValueError every other bad DSP argument raises
        assert isinstance(ours.value, ValueError)
        assert "arch='z9' is not one of" in str(ours.value)


def test_positional_arguments_as_in_efficientnetv2():
    # EfficientNetV2(arch, in_channels, drop_path_rate, out_indices, ...)
    torch.manual_seed(0)
    ref = EfficientNetV2('b0', 4, 0.0, (3, 7), 1)
    torch.manual_seed(0)
    dsp = EfficientNetDSP('b0', 4, 0.0, (3, 7), 1, **OFF)
    assert dsp.out_indices == ref.out_indices == [3, 7]
    assert dsp.frozen_stages == ref.frozen_stages == 1
    dsp.load_state_dict(ref.state_dict(), strict=True)
    ref.eval(), dsp.eval()
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        for a, b in zip(ref(x), dsp(x)):
            assert torch.equal(a, b)


def test_new_attention_brick_is_a_config_change():
    from mmengine.model import BaseModule
    from mmengine.registry import MODELS as MMENGINE_MODELS

    # A brick the backbone has never heard of: registered, and taking the
    # common (in_channels, ...) signature, it needs no edit of the backbone.
    @MMENGINE_MODELS.register_module(name='_ChannelGate', force=True)
    class ChannelGate(BaseModule):

        def __init__(self, in_channels, bias=1.0):
            super().__init__()
            self.in_channels = in_channels
            self.gate = torch.nn.Parameter(torch.full((in_channels, ), bias))

        def forward(self, x):
            return x * torch.sigmoid(self.gate).view(1, -1, 1, 1)

    model = EfficientNetDSP(
        arch='b0',
        attention_cfg=dict(type='_ChannelGate', bias=2.0),
        dy_stages=(2, 4))
    for stage in (4, 5, 6):
        for block in model.layers[stage]:
            assert type(block.se) is ChannelGate
            assert block.se.in_channels == \
                block.linear_conv.conv.in_channels
            assert torch.all(block.se.gate == 2.0)
            names = [n for n, _ in block.named_children()]
            assert names.index('se') == names.index('linear_conv') - 1
    out, = model.eval()(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 1280, 1, 1)


def test_every_block_kind_has_a_builder():
    from mmdsp.models.backbones._dsp_layout import KIND_NAMES
    assert set(EfficientNetDSP.block_builders) == set(KIND_NAMES)


def test_layers_are_built_once(monkeypatch):
    from mmpretrain.models.utils import InvertedResidual
    built = []
    for cls in (EdgeResidual, InvertedResidual):
        original = cls.__init__

        def counting_init(self, *args, _original=original, **kwargs):
            built.append(self)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, '__init__', counting_init)
    model = EfficientNetDSP(arch='b0', attention_cfg=SAR_B0, dy_stages=(2, ))
    blocks = [b for b in model.modules()
              if isinstance(b, (EdgeResidual, InvertedResidual))]
    # every block built is in the model: none is built and replaced
    assert len(built) == len(blocks) == sum(
        row[0] for row in EfficientNetV2.arch_settings['b0'][1:-1])
    assert {id(b) for b in built} == {id(b) for b in blocks}
