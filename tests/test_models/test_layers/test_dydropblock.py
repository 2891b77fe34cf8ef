import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_plugin_layer
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.layers import DyDropBlock, depth_schedule


def expected_drop_fraction(p, beta, h, w):
    """Exact E[dropped fraction] for seeds on the valid corners.

    A unit is dropped unless none of the n_i seeds whose block covers it
    fires: P = 1 - (1 - alpha)^{n_i}.
    """
    alpha = p * h * w / (beta**2 * (h - beta + 1) * (w - beta + 1))
    cover = np.zeros((h, w))
    for i in range(h - beta + 1):
        for j in range(w - beta + 1):
            cover[i:i + beta, j:j + beta] += 1
    return float(np.mean(1 - (1 - alpha)**cover))


@pytest.mark.parametrize('p,beta', [(0.1, 7), (0.2, 3), (0.05, 5)])
def test_drop_fraction_matches_drop_prob(p, beta):
    torch.manual_seed(0)
    m = DyDropBlock(drop_prob=p, block_size=beta).train()
    x = torch.ones(8, 16, 64, 64)
    out = m(x)
    frac = (out == 0).float().mean().item()
    assert frac == pytest.approx(
        expected_drop_fraction(p, beta, 64, 64), abs=0.01)
    # Overlapping blocks make the realised rate a little below p.
    assert frac == pytest.approx(p, rel=0.12)
    # Kept units are rescaled by numel / kept, so the sum is preserved.
    kept = (out != 0).sum().item()
    torch.testing.assert_close(out[out != 0],
                               torch.full((kept, ), x.numel() / kept))
    assert out.sum().item() == pytest.approx(x.numel(), rel=1e-5)


@pytest.mark.parametrize('beta', [3, 4])
def test_dropped_region_is_union_of_blocks(beta):
    torch.manual_seed(1)
    m = DyDropBlock(drop_prob=0.15, block_size=beta).train()
    dropped = (m(torch.ones(2, 3, 20, 17)) == 0).float()
    assert dropped.sum() > 0
    # Windows fully inside the dropped set, dilated back, must cover it.
    full = (F.avg_pool2d(dropped, beta, stride=1) > 1 - 1e-6).float()
    pad = beta - 1
    rebuilt = F.max_pool2d(F.pad(full, (pad, pad, pad, pad)), beta, stride=1)
    torch.testing.assert_close(rebuilt, dropped)


def test_masks_differ_per_channel():
    torch.manual_seed(0)
    out = DyDropBlock(0.3, 3).train()(torch.ones(1, 4, 16, 16))
    masks = (out == 0)
    assert not all(torch.equal(masks[0, 0], masks[0, c]) for c in range(4))


def test_gamma_is_eq9():
    m = DyDropBlock(drop_prob=0.1, block_size=7)
    alpha, beta = m.gamma(14, 20)
    assert beta == 7
    assert alpha == pytest.approx(0.1 * 280 / (49 * 14 * 8))
    # Block size is clipped to the smaller side of the map.
    alpha, beta = m.gamma(3, 5)
    assert beta == 3
    assert alpha == pytest.approx(0.1 * 15 / (9 * 1 * 3))
    out = m.train()(torch.randn(2, 4, 3, 5))
    assert out.shape == (2, 4, 3, 5)


def test_identity_cases():
    x = torch.randn(2, 4, 9, 9)
    assert DyDropBlock(0.3).eval()(x) is x
    assert DyDropBlock(0.0).train()(x) is x
    m = DyDropBlock(0.3).train()
    m.scale = 0.0
    assert m(x) is x


def test_scale_multiplies_drop_prob():
    m = DyDropBlock(0.2, 3)
    m.scale = 0.5
    assert m.effective_drop_prob == pytest.approx(0.1)
    torch.manual_seed(0)
    frac = (m.train()(torch.ones(4, 8, 48, 48)) == 0).float().mean().item()
    assert frac == pytest.approx(expected_drop_fraction(0.1, 3, 48, 48),
                                 abs=0.01)
    with pytest.raises(ValueError, match='scale'):
        m.scale = 1.5


def test_gradient_and_batch_one():
    m = DyDropBlock(0.2, 3).train()
    x = torch.randn(1, 2, 12, 12, requires_grad=True)
    torch.manual_seed(0)
    out = m(x)
    out.sum().backward()
    keep = (out != 0)
    assert torch.all(x.grad[~keep] == 0)
    assert torch.all(x.grad[keep] > 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match='drop_prob'):
        DyDropBlock(drop_prob=1.0)
    with pytest.raises(ValueError, match='block_size'):
        DyDropBlock(block_size=0)
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        DyDropBlock(0.1).train()(torch.randn(2, 3, 4))


def test_depth_schedule():
    np.testing.assert_allclose(
        depth_schedule(0.0, 0.1, 4), [0.025, 0.05, 0.075, 0.1])
    np.testing.assert_allclose(
        depth_schedule(0.05, 0.25, 4), [0.1, 0.15, 0.2, 0.25])
    # start=0 is the formula as printed: (p_f - p_s) / depth * n.
    pf, depth = 0.3, 7
    np.testing.assert_allclose(
        depth_schedule(0, pf, depth),
        [(pf - 0) / depth * n for n in range(1, depth + 1)])
    assert depth_schedule(0.1, 0.1, 3) == pytest.approx([0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match='depth'):
        depth_schedule(0, 0.1, 0)
    with pytest.raises(ValueError, match='final'):
        depth_schedule(0, 1.5, 3)


def test_build_from_registries():
    m = MODELS.build(dict(type='DyDropBlock', drop_prob=0.2, block_size=5))
    assert isinstance(m, DyDropBlock) and m.block_size == 5
    name, layer = build_plugin_layer(dict(type='DyDropBlock'), 2)
    assert name == 'dy_drop_block2' and isinstance(layer, DyDropBlock)


def reference_dropblock(m, x):
    """DyDropBlock written out directly: beta x beta max-pool of the padded
    seeds and ``x * keep * numel / kept``, drawing the same seeds."""
    n, c, h, w = x.shape
    alpha, beta = m.gamma(h, w)
    seeds = torch.bernoulli(
        torch.full((n, c, h - beta + 1, w - beta + 1),
                   min(alpha, 1.0),
                   dtype=x.dtype))
    pad = beta - 1
    keep = 1 - F.max_pool2d(
        F.pad(seeds, (pad, pad, pad, pad)), kernel_size=beta, stride=1)
    kept = keep.sum(dtype=torch.float32).clamp_min(m.eps)
    return x * keep * (keep.numel() / kept).to(x.dtype)


@pytest.mark.parametrize('shape,beta', [((2, 3, 20, 17), 4),
                                        ((2, 3, 16, 16), 7),
                                        ((3, 5, 7, 7), 7),
                                        ((2, 3, 7, 10), 7),
                                        ((2, 3, 5, 5), 1)])
def test_fast_mask_equals_reference(shape, beta):
    m = DyDropBlock(drop_prob=0.3, block_size=beta).train()
    x = torch.randn(shape, requires_grad=True)
    torch.manual_seed(3)
    out = m(x)
    torch.manual_seed(3)
    ref = reference_dropblock(m, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    grad = torch.randn(shape)
    g_out, = torch.autograd.grad(out, x, grad)
    g_ref, = torch.autograd.grad(ref, x, grad)
    torch.testing.assert_close(g_out, g_ref, rtol=0, atol=0)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_fast_mask_exact_in_half_precision(dtype):
    # Long rows with many seeds: prefix sums beyond what bfloat16 / float16
    # count exactly must still give the max-pool mask.
    m = DyDropBlock(drop_prob=0.9, block_size=2).train()
    x = torch.ones(1, 1, 1000, 300, dtype=dtype)
    torch.manual_seed(5)
    out = m(x)
    torch.manual_seed(5)
    ref = reference_dropblock(m, x)
    assert out.dtype == dtype
    torch.testing.assert_close(out == 0, ref == 0, rtol=0, atol=0)
