"""``set_impl``: the readable reference forward of every brick against its
tuned kernels, outputs and gradients, in float32 and under bf16 autocast."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models import layers
from mmdsp.models.layers import get_impl, set_impl, use_impl

# (config, input shape); every tuned branch of the kernels is reached.
CASES = {
    'SAR-7x7': (dict(type='SAR', in_channels=32, groups=8), (2, 32, 7, 7)),
    'SAR-14x14': (dict(type='SAR', in_channels=32, groups=8),
                  (2, 32, 14, 14)),
    'SAR-6x9': (dict(type='SAR', in_channels=32, groups=8), (3, 32, 6, 9)),
    'SAR-1x1': (dict(type='SAR', in_channels=32, groups=8), (2, 32, 1, 1)),
    'SAR-no-shuffle-no-residual': (dict(
        type='SAR', in_channels=32, groups=4, shuffle_groups=1,
        residual=False), (2, 32, 5, 5)),
    'SAR-shuffle-4': (dict(
        type='SAR', in_channels=32, groups=4, shuffle_groups=4),
                      (2, 32, 4, 3)),
    'SAR-other-norm': (dict(
        type='SAR', in_channels=16, groups=2,
        norm_cfg=dict(type='GN', num_groups=2)), (2, 16, 5, 5)),
    'DyReLU-k1': (dict(type='DyReLU', channels=8, k=1), (2, 8, 5, 4)),
    'DyReLU-k2': (dict(type='DyReLU', channels=8), (2, 8, 5, 4)),
    'DyReLU-k3': (dict(type='DyReLU', channels=8, k=3), (2, 8, 5, 4)),
    'DyDropBlock': (dict(type='DyDropBlock', drop_prob=0.3, block_size=3),
                    (2, 4, 11, 9)),
    'DyDropBlock-whole-map': (dict(
        type='DyDropBlock', drop_prob=0.3, block_size=7), (3, 4, 7, 7)),
    'ODConv2d-factorized': (dict(
        type='ODConv2d', in_channels=8, out_channels=6, kernel_size=1,
        kernel_num=1, bias=True), (2, 8, 5, 5)),
    'ODConv2d-factorized-depthwise': (dict(
        type='ODConv2d', in_channels=8, out_channels=8, kernel_size=1,
        groups=8, kernel_num=1), (2, 8, 5, 5)),
}


def _brick(cfg):
    torch.manual_seed(0)
    brick = MODELS.build(cfg).train()
    # Non-trivial parameters, so that no gate or attention is uniform.
    with torch.no_grad():
        for p in brick.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return brick


def _run(brick, x, grad, impl, autocast=False):
    """Output and the gradients of input and parameters under ``impl``."""
    x = x.detach().requires_grad_()
    params = [x] + list(brick.parameters())
    torch.manual_seed(1)  # DyDropBlock draws the same seeds in both
    with use_impl(impl), torch.autocast(
            'cpu', dtype=torch.bfloat16, enabled=autocast):
        # Under autocast a preceding conv hands the brick a bf16 map.
        out = brick(x.bfloat16() if autocast else x)
    grads = torch.autograd.grad(
        out, params, grad.to(out.dtype), allow_unused=True)
    return [out.float()] + [g for g in grads if g is not None]


@pytest.mark.parametrize('name', sorted(CASES))
def test_fast_equals_reference_float32(name):
    cfg, shape = CASES[name]
    brick = _brick(cfg)
    x, grad = torch.randn(shape), torch.randn(shape)
    if cfg['type'] == 'ODConv2d':
        grad = torch.randn(shape[0], cfg['out_channels'], *shape[2:])
    fast = _run(brick, x, grad, 'fast')
    ref = _run(brick, x, grad, 'reference')
    assert len(fast) == len(ref) > 1
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Without autograd (DyReLU's in-place eval path) as well.
    with torch.no_grad():
        torch.manual_seed(1)
        with use_impl('fast'):
            out_fast = brick(x)
        torch.manual_seed(1)
        with use_impl('reference'):
            out_ref = brick(x)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', sorted(CASES))
def test_fast_equals_reference_bf16_autocast(name):
    """Under autocast both paths mix bf16 and fp32, each in its own order,
    so they agree to bf16 precision (about 0.4 % per rounding; measured up
    to 2.1 % of the largest value, after a backward): both are held to 3 %
    of the fp32 result, and to each other."""
    cfg, shape = CASES[name]
    brick = _brick(cfg)
    x = torch.randn(shape)
    grad = torch.randn(shape)
    if cfg['type'] == 'ODConv2d':
        grad = torch.randn(shape[0], cfg['out_channels'], *shape[2:])
    fast = _run(brick, x, grad, 'fast', autocast=True)
    ref = _run(brick, x, grad, 'reference', autocast=True)
    exact = _run(brick, x, grad, 'reference')
    assert len(fast) == len(ref) == len(exact) > 1
    for a, b, e in zip(fast, ref, exact):
        assert torch.isfinite(a).all() and torch.isfinite(b).all()
        tol = 0.03 * e.abs().max().clamp_min(1)
        assert (a.float() - e).abs().max() <= tol
        assert (b.float() - e).abs().max() <= tol
        assert (a.float() - b.float()).abs().max() <= tol


def test_switch_is_one_global_and_checked():
    assert get_impl() == 'fast'
    with use_impl('reference'):
        assert layers.get_impl() == 'reference'
    assert get_impl() == 'fast'
    set_impl('reference')
    try:
        assert get_impl() == 'reference'
    finally:
        set_impl('fast')
    with pytest.raises(ValueError, match='fast'):
        set_impl('tuned')
    with pytest.raises(ValueError):
        with use_impl('slow'):
            pass
    assert get_impl() == 'fast'


def test_reference_is_what_runs():
    """The switch really selects the reference: it calls SAR's ``F_h``
    module, which the tuned strip kernel replaces by a banded matmul."""
    calls = []
    sar = MODELS.build(dict(type='SAR', in_channels=16, groups=4))
    sar.conv_h.register_forward_hook(lambda *args: calls.append('conv_h'))
    x = torch.randn(2, 16, 5, 5)
    with use_impl('fast'):
        sar(x)
    assert calls == []
    with use_impl('reference'):
        sar(x)
    assert calls == ['conv_h']
