import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_plugin_layer
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import Registry
from mmpretrain.models.utils import SELayer
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.layers import CBAM, ECA, SE

OTHER_MODELS = Registry(
    'models', parent=ROOT_MODELS, scope='mmdsp_test_attention_scope')


def randomize(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(squeeze_channels=4,
         act_cfg=(dict(type='Swish'), dict(type='Sigmoid'))),
    dict(ratio=4, divisor=1, bias=False),
])
def test_se_is_selayer(kwargs):
    se = randomize(SE(in_channels=32, **kwargs))
    ref = SELayer(channels=32, **kwargs)
    assert isinstance(se, SELayer)
    assert list(se.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(se.state_dict(), strict=True)
    x = torch.randn(2, 32, 5, 4)
    torch.testing.assert_close(se(x), ref(x), rtol=0, atol=0)


def test_se_keys_for_efficientnet():
    se = SE(in_channels=96, squeeze_channels=6,
            act_cfg=(dict(type='Swish'), dict(type='Sigmoid')))
    assert se.conv1.conv.out_channels == 6
    assert sorted(se.state_dict()) == [
        'conv1.conv.bias', 'conv1.conv.weight', 'conv2.conv.bias',
        'conv2.conv.weight'
    ]
    with pytest.raises(TypeError, match='in_channels'):
        SE(in_channels=8, channels=8)


@pytest.mark.parametrize('c,k', [(16, 3), (64, 3), (256, 5), (512, 5),
                                 (1536, 5), (2, 1)])
def test_eca_adaptive_kernel(c, k):
    # |log2(C)/2 + 1/2| rounded down, then up to the next odd number.
    assert ECA(c).kernel_size == k


def se_formula(m, x):
    """SE (Hu et al.) with SELayer's default ReLU / sigmoid:
    ``x * sigmoid(W2 relu(W1 mean(x) + b1) + b2)``."""
    w1, b1 = m.conv1.conv.weight.flatten(1), m.conv1.conv.bias
    w2, b2 = m.conv2.conv.weight.flatten(1), m.conv2.conv.bias
    hidden = torch.relu(x.mean(dim=(2, 3)) @ w1.t() + b1)
    return x * torch.sigmoid(hidden @ w2.t() + b2)[:, :, None, None]


def eca_formula(m, x):
    """ECA: a zero-padded 1-D correlation of the channel means, sigmoid."""
    k = m.kernel_size
    w = m.conv.weight.view(k)
    s = F.pad(x.mean(dim=(2, 3)), (k // 2, k // 2))  # (N, C + k - 1)
    c = x.shape[1]
    att = torch.sigmoid(sum(w[t] * s[:, t:t + c] for t in range(k)))
    return x * att[:, :, None, None]


def cbam_formula(m, x):
    """CBAM: channel attention (shared MLP on mean and max), then spatial
    attention (conv over the channel mean and max maps)."""
    hidden = m.mlp[0].out_channels
    w1 = m.mlp[0].weight.view(hidden, -1)
    w2 = m.mlp[2].weight.view(-1, hidden)

    def mlp(v):
        return torch.relu(v @ w1.t()) @ w2.t()

    ca = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    x1 = x * ca[:, :, None, None]
    maps = torch.stack([x1.mean(dim=1), x1.amax(dim=1)], dim=1)
    k = m.spatial_conv.kernel_size[0]
    sa = torch.sigmoid(F.conv2d(maps, m.spatial_conv.weight, padding=k // 2))
    return x1 * sa


FORMULAS = {SE: se_formula, ECA: eca_formula, CBAM: cbam_formula}


def test_eca_matches_formula():
    m = randomize(ECA(12, kernel_size=3))
    x = torch.randn(2, 12, 4, 5)
    w = m.conv.weight.view(3)
    s = x.mean(dim=(2, 3))  # (N, C)
    padded = F.pad(s, (1, 1))
    att = torch.sigmoid(w[0] * padded[:, :-2] + w[1] * padded[:, 1:-1] +
                        w[2] * padded[:, 2:])
    torch.testing.assert_close(m(x), x * att[:, :, None, None])
    torch.testing.assert_close(eca_formula(m, x), x * att[:, :, None, None])
    with pytest.raises(ValueError, match='odd'):
        ECA(12, kernel_size=4)


def test_cbam_matches_formula():
    m = randomize(CBAM(8, ratio=4, spatial_kernel=3))
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(m(x), cbam_formula(m, x))
    # Narrow inputs keep at least one hidden unit.
    assert CBAM(4, ratio=16).mlp[0].out_channels == 1


@pytest.mark.parametrize('cls', [SE, ECA, CBAM])
def test_shape_grad_batch_one_eval(cls):
    m = randomize(cls(in_channels=24))
    x = torch.randn(1, 24, 7, 3, requires_grad=True)
    m.train()
    out = m(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.parameters())
    m.eval()
    with torch.no_grad():
        x = torch.randn(3, 24, 7, 3)
        torch.testing.assert_close(m(x), FORMULAS[cls](m, x))


@pytest.mark.parametrize('name,cls', [('SE', SE), ('ECA', ECA),
                                      ('CBAM', CBAM)])
def test_build_from_registries(name, cls):
    assert isinstance(MODELS.build(dict(type=name, in_channels=32)), cls)
    assert isinstance(
        OTHER_MODELS.build(dict(type=name, in_channels=32)), cls)
    abbr, layer = build_plugin_layer(dict(type=name), 0, in_channels=32)
    assert isinstance(layer, cls) and abbr == name.lower() + '0'
