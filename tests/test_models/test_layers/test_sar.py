import math

import pytest
import torch
from mmcv.cnn import build_plugin_layer
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope, Registry
from mmpretrain.models.utils import channel_shuffle
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.layers import SAR

# A registry of a foreign scope, as a downstream OpenMMLab project has.
OTHER_MODELS = Registry(
    'models', parent=ROOT_MODELS, scope='mmdsp_test_sar_scope')


def randomize(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


@torch.no_grad()
def loop_reference(m, x):
    """SAR without residual, written channel by channel from eqs. 3-7."""
    n, c, h, w = x.shape
    cg = c // m.groups
    k = m.kernel_size
    half = k // 2
    eps = m.norm.eps
    y = torch.empty_like(x)

    def strip_weight(z, conv_w, j):
        # Zero-padded 1-D correlation of one channel's strip.
        length = z.shape[0]
        out = torch.zeros_like(z)
        for i in range(length):
            for t in range(k):
                src = i + t - half
                if 0 <= src < length:
                    out[i] += conv_w[j, 0, t] * z[src]
        # GroupNorm with one channel per norm group: over the strip only.
        mean = out.mean()
        var = ((out - mean)**2).mean()
        out = (out - mean) / math.sqrt(var + eps)
        out = out * m.norm.weight[j] + m.norm.bias[j]
        return torch.sigmoid(out)

    for b in range(n):
        for ch in range(c):
            j = ch % cg  # position inside its group: shared weights
            xc = x[b, ch]
            z_h = xc.mean(dim=1)  # eq. 3, length H
            z_w = xc.mean(dim=0)  # eq. 4, length W
            y_h = strip_weight(z_h, m.conv_h.weight, j)  # eq. 5
            y_w = strip_weight(z_w, m.conv_w.weight, j)  # eq. 6
            y[b, ch] = xc * y_h[:, None] * y_w[None, :]  # eq. 7
    # Channel shuffle by s groups: new channel q*s + r is old r*(c/s) + q.
    s = m.shuffle_groups
    out = torch.empty_like(y)
    for r in range(s):
        for q in range(c // s):
            out[:, q * s + r] = y[:, r * (c // s) + q]
    return out


@pytest.mark.parametrize('c,groups,shuffle', [(8, 2, 2), (12, 3, 3),
                                              (6, 6, 2), (8, 4, 1)])
def test_no_residual_matches_loop(c, groups, shuffle):
    torch.manual_seed(0)
    m = randomize(
        SAR(c, groups=groups, shuffle_groups=shuffle, residual=False)).double()
    x = torch.randn(2, c, 5, 9, dtype=torch.double)
    torch.testing.assert_close(m(x), loop_reference(m, x))


def test_residual_adds_input():
    torch.manual_seed(0)
    m = randomize(SAR(16, groups=4)).eval()
    x = torch.randn(2, 16, 7, 6)
    m.residual = False
    attn = m(x)
    m.residual = True
    torch.testing.assert_close(m(x), attn + x)
    # The attention branch is not trivially zero.
    assert attn.abs().mean() > 0.01


@pytest.mark.parametrize('c', [256, 512, 768, 960, 1536])
def test_default_groups_fit_paper_widths(c):
    m = SAR(c)
    assert m.groups == 64
    x = torch.randn(1, c, 3, 4)
    assert m(x).shape == x.shape


def test_weights_shared_across_groups():
    # Parameter count depends on channels per group, not on groups.
    a = SAR(64, groups=64)
    b = SAR(128, groups=128)
    assert sum(p.numel() for p in a.parameters()) == sum(
        p.numel() for p in b.parameters()) == 2 * 7 + 2


def test_bad_groups_rejected():
    with pytest.raises(ValueError, match=r'groups=64.*in_channels=96'):
        SAR(96)
    with pytest.raises(ValueError, match='groups=5'):
        SAR(16, groups=5)
    with pytest.raises(ValueError, match='kernel_size'):
        SAR(16, groups=4, kernel_size=4)
    with pytest.raises(ValueError, match='shuffle_groups=3'):
        SAR(16, groups=4, shuffle_groups=3)


def test_wrong_input_channels():
    with pytest.raises(ValueError, match='16'):
        SAR(16, groups=4)(torch.randn(1, 8, 4, 4))


def test_gradients_and_batch_one_training():
    m = SAR(32, groups=8).train()
    x = torch.randn(1, 32, 5, 5, requires_grad=True)
    m(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('shape', [(2, 16, 6, 5), (2, 16, 1, 1)])
def test_eval_equals_loop_reference(shape):
    """Eval mode (no autograd) against eqs. 3-7 plus the residual, in
    float64; 1x1 maps (late stages at small inputs) included: a strip of
    one has zero variance, so G_n returns its bias."""
    torch.manual_seed(0)
    m = randomize(SAR(16, groups=4)).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        out = m(x)
    ref = loop_reference(m.double(), x.double()) + x.double()
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-5)


def test_build_from_registries():
    m = MODELS.build(dict(type='SAR', in_channels=64))
    assert isinstance(m, SAR) and m.in_channels == 64
    name, layer = build_plugin_layer(dict(type='SAR', groups=8), 1,
                                     in_channels=32)
    assert name == 'sar1' and isinstance(layer, SAR) and layer.groups == 8
    assert isinstance(
        OTHER_MODELS.build(dict(type='SAR', in_channels=64)), SAR)
    with DefaultScope.overwrite_default_scope('mmdsp_test_sar_scope'):
        _, layer = build_plugin_layer(dict(type='SAR'), in_channels=128)
    assert isinstance(layer, SAR)


def reference_sar(m, x):
    """SAR as first written: groups folded into the batch, the modules
    F_h, F_w and G_n called as they are, shuffle copy, then the residual."""
    n, c, h, w = x.shape
    xg = x.reshape(n * m.groups, m.group_channels, h, w)
    y_h = torch.sigmoid(m.norm(m.conv_h(xg.mean(dim=3))))
    y_w = torch.sigmoid(m.norm(m.conv_w(xg.mean(dim=2))))
    y = (xg * y_h.unsqueeze(3) * y_w.unsqueeze(2)).reshape(n, c, h, w)
    if m.shuffle_groups > 1:
        y = channel_shuffle(y, m.shuffle_groups)
    return y + x if m.residual else y


@pytest.mark.parametrize('kwargs,shape', [
    (dict(in_channels=32, groups=8), (2, 32, 7, 7)),
    (dict(in_channels=32, groups=8), (3, 32, 6, 9)),
    (dict(in_channels=32, groups=8), (2, 32, 9, 10)),
    (dict(in_channels=32, groups=4, residual=False), (2, 32, 12, 12)),
    (dict(in_channels=24, groups=4, kernel_size=3), (1, 24, 2, 5)),
    (dict(in_channels=32, groups=4, shuffle_groups=1), (2, 32, 5, 5)),
    (dict(in_channels=32, groups=4, residual=False), (2, 32, 4, 4)),
    (dict(in_channels=32, groups=4, shuffle_groups=4, residual=False),
     (2, 32, 4, 3)),
    (dict(in_channels=16, groups=2,
          norm_cfg=dict(type='GN', num_groups=8, affine=False)),
     (2, 16, 5, 5)),
    (dict(in_channels=16, groups=2, norm_cfg=dict(type='GN', num_groups=2)),
     (2, 16, 5, 5)),
])
def test_fast_path_matches_reference(kwargs, shape):
    """Output and every gradient of the optimised forward equal those of
    the straightforward one, with non-trivial conv and norm parameters."""
    torch.manual_seed(0)
    m = SAR(**kwargs).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(shape, dtype=torch.float64)
    out, ref = m(x), reference_sar(m, x)
    torch.testing.assert_close(out, ref)
    params = [x] + list(m.parameters())
    for g, r in zip(torch.autograd.grad(out, params, grad),
                    torch.autograd.grad(ref, params, grad)):
        torch.testing.assert_close(g, r)


def test_toeplitz_is_the_conv1d():
    from mmdsp.models.layers._sar_kernels import toeplitz
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(3, 3, 7, padding=3, groups=3, bias=False)
    for length in (1, 4, 7, 12):
        z = torch.randn(5, 3, length)
        band = toeplitz(conv.weight, length)
        torch.testing.assert_close(
            torch.einsum('cji,nci->ncj', band, z), conv(z))


def test_channels_last_input():
    torch.manual_seed(0)
    m = SAR(32, groups=8)
    x = torch.randn(2, 32, 7, 7)
    torch.testing.assert_close(
        m(x.contiguous(memory_format=torch.channels_last)), m(x))


@pytest.mark.parametrize('size', [7, 14])
def test_trains_after_inference_mode(size):
    # The tuned kernels cache constant index / 0/1 tensors; made in the
    # first (here inference-mode) call, they must still be usable when a
    # later training step saves them for backward.
    m = SAR(32, groups=8, kernel_size=5)
    with torch.inference_mode():
        m(torch.randn(1, 32, size, size + 1))
        m(torch.randn(1, 32, size, size))
    x = torch.randn(1, 32, size, size, requires_grad=True)
    m(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and m.conv_h.weight.grad is not None
