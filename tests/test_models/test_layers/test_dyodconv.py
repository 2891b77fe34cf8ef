import pytest
import torch
from mmcv.cnn import ConvModule
from torch import nn

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.layers import DyODConv, DyReLU, ODConv2d


@pytest.mark.parametrize('kwargs, in_shape, out_shape', [
    (dict(in_channels=8, out_channels=8, kernel_size=3, groups=8),
     (2, 8, 7, 7), (2, 8, 7, 7)),
    (dict(in_channels=8, out_channels=8, kernel_size=5, stride=2, groups=8),
     (2, 8, 9, 8), (2, 8, 5, 4)),
    (dict(in_channels=4, out_channels=6, kernel_size=(3, 5), dilation=2),
     (1, 4, 9, 9), (1, 6, 9, 9)),
])
def test_same_padding_shapes(kwargs, in_shape, out_shape):
    m = DyODConv(**kwargs)
    assert m(torch.randn(in_shape)).shape == out_shape


def test_composition_equals_its_parts(oracles):
    torch.manual_seed(0)
    m = DyODConv(8, 8, 3, groups=8).eval()
    assert isinstance(m.conv, ODConv2d) and isinstance(m.activate, DyReLU)
    assert m.norm_name == 'bn' and m.norm is m.bn
    assert m.activate.channels == 8
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        for p in m.parameters():  # no uniform attention or identity BN
            p.copy_(torch.randn_like(p) * 0.5)
        m.bn.running_mean.normal_()
        m.bn.running_var.uniform_(0.5, 2)
        expected = m.activate(m.bn(m.conv(x)))
        out = m(x)  # eval, no autograd: BN folded into DyReLU
        torch.testing.assert_close(out, expected)
        # ... and both against the equations: ODConv, eval BN, DY-ReLU-B.
        oracle = oracles.dyrelu(
            m.activate,
            oracles.batchnorm_eval(m.bn, oracles.odconv(m.conv, x).float()))
        torch.testing.assert_close(out, oracle, rtol=1e-5, atol=1e-5)


def test_loads_pretrained_depthwise_conv_module():
    src = ConvModule(8, 8, 3, padding=1, groups=8, norm_cfg=dict(type='BN'),
                     act_cfg=dict(type='SiLU'))
    with torch.no_grad():
        src.bn.weight.uniform_(0.5, 1.5)
        src.bn.running_mean.normal_()
    dst = DyODConv(8, 8, 3, groups=8, kernel_num=4)
    result = dst.load_state_dict(src.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert all(k.startswith(('conv.', 'activate.'))
               for k in result.missing_keys)
    assert 'conv.weight' not in result.missing_keys
    torch.testing.assert_close(dst.bn.weight, src.bn.weight)
    torch.testing.assert_close(dst.bn.running_mean, src.bn.running_mean)
    for i in range(4):
        torch.testing.assert_close(dst.conv.weight[i], src.conv.weight)


def test_batch_one_training_step_and_gradients():
    torch.manual_seed(0)
    m = DyODConv(8, 8, 3, groups=8, norm_cfg=dict(type='GN', num_groups=2))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = torch.randn(1, 8, 5, 5)
    loss = m(x).square().mean()
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    before = m.conv.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, m.conv.weight)


def test_other_norm_act_and_no_norm():
    m = DyODConv(4, 6, 3, norm_cfg=None, act_cfg=dict(type='SiLU'))
    assert m.conv.bias is not None and m.norm is None
    assert isinstance(m.activate, nn.SiLU)
    assert m(torch.randn(2, 4, 5, 5)).shape == (2, 6, 5, 5)
    bare = DyODConv(4, 4, 3, act_cfg=None)
    assert not hasattr(bare, 'activate')
    with pytest.raises(KeyError, match='NoSuchAct'):
        DyODConv(4, 4, 3, act_cfg=dict(type='NoSuchAct'))


def test_registry_and_temperature():
    from mmpretrain.registry import MODELS
    m = MODELS.build(dict(type='DyODConv', in_channels=4, out_channels=4,
                          kernel_size=3, groups=4,
                          conv_kwargs=dict(temperature=5.0)))
    assert isinstance(m, DyODConv) and m.conv.temperature == 5.0
    m.update_temperature(2.0)
    assert m.conv.temperature == 2.0
