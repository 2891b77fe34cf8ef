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
# Per-sample ODConv2d kernels: the batch-folded grouped conv in eager mode
# (the reference), the tap-by-tap per_sample_forward under torch.compile and
# torch.export. Checked by the compiled-path tests below.
PER_SAMPLE_CASES = {
    'ODConv2d-depthwise-3x3-stride2': (dict(
        type='ODConv2d', in_channels=8, out_channels=8, kernel_size=3,
        stride=2, padding=1, groups=8, kernel_num=4), (3, 8, 9, 8)),
    'ODConv2d-grouped-dilated': (dict(
        type='ODConv2d', in_channels=8, out_channels=6, kernel_size=(3, 2),
        padding=(2, 1), dilation=(2, 1), groups=2, kernel_num=2,
        bias=True), (2, 8, 7, 6)),
}


def _brick(cfg):
    torch.manual_seed(0)
    brick = MODELS.build(cfg).train()
    # Non-trivial parameters, so that no gate or attention is uniform.
    with torch.no_grad():
        for p in brick.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return brick


def _grad_like(brick, x):
    """A random output gradient (ODConv2d may change the shape)."""
    with torch.no_grad():
        torch.manual_seed(1)
        shape = brick(x).shape
    return torch.randn(shape)


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


def _compiled(brick):
    """The brick under torch.compile with AOT autograd and no inductor
    (fast to build): dynamo traces the forward the bricks take while
    compiling, ``fullgraph=True`` fails on any graph break."""
    torch._dynamo.reset()
    return torch.compile(brick, backend='aot_eager', fullgraph=True)


@pytest.mark.parametrize('name', sorted(CASES) + sorted(PER_SAMPLE_CASES))
def test_compiled_path_equals_reference(name):
    """The plain-op paths the bricks take under torch.compile and
    torch.export (SAR's banded-matmul composite, DyReLU's running max,
    ODConv's tap-by-tap per-sample kernels) against the reference, output
    and every gradient, float32 to 1e-5; under bf16 autocast against the
    reference under autocast, to 3 % of the float32 result; no graph
    break."""
    cfg, shape = {**CASES, **PER_SAMPLE_CASES}[name]
    brick = _brick(cfg)
    x = torch.randn(shape)
    grad = _grad_like(brick, x)
    compiled = _compiled(brick)
    got = _run(compiled, x, grad, 'fast')
    ref = _run(brick, x, grad, 'reference')
    assert len(got) == len(ref) > 1
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    got = _run(compiled, x, grad, 'fast', autocast=True)
    ref_bf16 = _run(brick, x, grad, 'reference', autocast=True)
    for a, b, e in zip(got, ref_bf16, ref):
        assert torch.isfinite(a).all()
        tol = 0.03 * e.abs().max().clamp_min(1)
        assert (a.float() - b.float()).abs().max() <= tol


def test_compiled_paths_are_the_traceable_ones(monkeypatch):
    """Under torch.compile SAR, DyReLU and a 3x3 ODConv2d run their
    traceable kernels (not the eager custom autograd functions or the
    batch-folded conv)."""
    from mmdsp.models.layers import (_dyrelu_kernels, _odconv_kernels,
                                     _sar_kernels)
    calls = []
    for module, name in ((_sar_kernels, 'sar_traceable'),
                         (_dyrelu_kernels, 'running_max'),
                         (_odconv_kernels, 'per_sample_forward')):
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name):
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(module, name, spy)
    net = torch.nn.Sequential(
        MODELS.build(dict(type='ODConv2d', in_channels=8, out_channels=8,
                          kernel_size=3, padding=1, groups=8)),
        MODELS.build(dict(type='DyReLU', channels=8)),
        MODELS.build(dict(type='SAR', in_channels=8, groups=4)))
    x = torch.randn(2, 8, 6, 6)
    net(x)
    assert calls == []
    _compiled(net)(x)
    assert sorted(calls) == ['per_sample_forward', 'running_max',
                             'sar_traceable']


def test_per_sample_forward_batch_independent():
    """ODConv's tap-by-tap kernels give each sample what a batch of one
    gives it, for depthwise, grouped, strided and dilated convs."""
    from mmdsp.models.layers import _odconv_kernels
    for cfg, shape in PER_SAMPLE_CASES.values():
        conv = _brick(cfg).eval()
        x = torch.randn(shape)
        with torch.no_grad():
            y = _odconv_kernels.per_sample_forward(conv, x,
                                                   conv.attentions(x))
            for b in range(shape[0]):
                one = conv(x[b:b + 1]) - (0 if conv.bias is None else
                                          conv.bias.view(1, -1, 1, 1))
                torch.testing.assert_close(y[b:b + 1], one, rtol=1e-5,
                                           atol=1e-5)


def _eval_unit():
    """A depthwise Dy-ODConv unit in eval mode with non-trivial BN
    statistics and parameters."""
    unit = _brick(dict(type='DyODConv', in_channels=8, out_channels=8,
                       kernel_size=3, groups=8)).eval()
    with torch.no_grad():
        unit.bn.running_mean.normal_()
        unit.bn.running_var.uniform_(0.5, 2)
    return unit


@pytest.mark.parametrize('chunked', [False, True])
def test_inference_paths_equal_reference(chunked, monkeypatch):
    """The no-autograd inference kernels: DyReLU's in-place two-piece max
    (also one sample at a time for large maps) and the Dy-ODConv unit's BN
    folded into DyReLU, against the reference in float32 (1e-5) and under
    bf16 autocast (3 % of the float32 result)."""
    from mmdsp.models.layers import _dyrelu_kernels
    if chunked:
        monkeypatch.setattr(_dyrelu_kernels, 'CHUNK_BYTES', 0)
    unit = _eval_unit()
    act = _brick(dict(type='DyReLU', channels=8)).eval()
    x = torch.randn(3, 8, 9, 7)
    for module in (unit, act):
        with torch.no_grad():
            with use_impl('reference'):
                ref = module(x)
            fast = module(x)
            torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
            with torch.autocast('cpu', dtype=torch.bfloat16):
                fast_bf16 = module(x.bfloat16())
                with use_impl('reference'):
                    ref_bf16 = module(x.bfloat16())
        assert fast_bf16.dtype == ref_bf16.dtype
        tol = 0.03 * ref.abs().max().clamp_min(1)
        assert (fast_bf16.float() - ref).abs().max() <= tol
        assert (ref_bf16.float() - ref).abs().max() <= tol


def test_bn_folding_only_without_autograd_or_hooks(monkeypatch):
    """The folded BN + DyReLU runs only in eval without autograd and with
    no hook on the norm or the activation (which would be skipped)."""
    from mmdsp.models.layers import _dyrelu_kernels
    calls = []
    original = _dyrelu_kernels.bn_dyrelu_eval

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(_dyrelu_kernels, 'bn_dyrelu_eval', spy)
    unit = _eval_unit()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        unit(x)
    assert calls == [1]
    unit(x)  # autograd on (e.g. Grad-CAM in eval mode)
    with torch.no_grad():
        unit.train()(x)
        handle = unit.bn.register_forward_hook(lambda *a: calls.append('h'))
        unit.eval()(x)
        handle.remove()
    assert calls == [1, 'h']
