from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer
from torch import nn

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.models.layers import ODConv2d, _odconv_kernels, use_impl
from mmdsp.models.layers._impl import IMPLS
from mmdsp.models.layers.odconv import ODConvAttention


def _randomized(m, seed=0):
    """Every parameter drawn anew (N(0, 0.25)), so that no attention is
    uniform: the attention biases start at zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


# ---------------------------------------------------------------------------
# Every forward of ODConv2d against the oracle written from the equations
# (conftest.py: odconv_oracle), output and gradients of the input and of
# every parameter.

def _impl(name):
    def forward(m, x):
        with use_impl(name):
            return m(x)
    return forward


def _channels_last(m, x):
    # The default impl on a channels_last CPU map: the portable kernels the
    # GPU runs.
    return m(x.contiguous(memory_format=torch.channels_last))


def _with_bias(m, y):
    return y if m.bias is None else y + m.bias.view(1, -1, 1, 1)


def _per_sample(m, x):
    # The tap-by-tap kernels torch.compile and torch.export trace.
    return _with_bias(
        m, _odconv_kernels.per_sample_forward(m, x, m.attentions(x)))


def _factorized(m, x):
    # kernel_num == 1 and 1x1: scale x, static conv, scale y.
    return _with_bias(
        m, _odconv_kernels.factorized_forward(m, x, m.attentions(x)))


def _compiled(m, x):
    torch._dynamo.reset()
    return torch.compile(m, backend='aot_eager', fullgraph=True)(x)


def _cuda(m, x):
    # The module's own forward on a GPU: parameters and buffers are moved
    # differentiably, so the gradients land on the CPU parameters the
    # oracle reads.
    state = {n: t.to('cuda') for n, t in m.state_dict(keep_vars=True).items()}
    return torch.func.functional_call(m, state, (x.to('cuda'), )).cpu()


@contextmanager
def _no_tf32():
    flags = (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = flags


# The forwards to check, by name: one per ``set_impl`` choice (a new impl
# joins by itself), plus the kernels the impls dispatch to, called directly.
# A new path is one more entry here.
ODCONV_PATHS = {
    **{f'impl-{name}': _impl(name) for name in IMPLS},
    'fast-channels_last': _channels_last,
    'per_sample_forward': _per_sample,
    'factorized_forward': _factorized,
    'compiled': _compiled,
    'cuda': _cuda,
}
# (ODConv2d kwargs, input shape)
ORACLE_CASES = {
    'dense-T2.5': (dict(in_channels=8, out_channels=12, kernel_size=3,
                        padding=1, bias=True, temperature=2.5),
                   (2, 8, 6, 5)),
    'depthwise': (dict(in_channels=8, out_channels=8, kernel_size=3,
                       padding=1, groups=8), (3, 8, 6, 6)),
    'stride2-T0.5': (dict(in_channels=8, out_channels=6, kernel_size=3,
                          stride=2, padding=1, kernel_num=3,
                          temperature=0.5), (2, 8, 7, 6)),
    'grouped-dilated': (dict(in_channels=8, out_channels=6,
                             kernel_size=(3, 2), padding=(2, 1),
                             dilation=(2, 1), groups=2, kernel_num=2,
                             bias=True), (2, 8, 7, 6)),
    '1x1-kernel_num3': (dict(in_channels=8, out_channels=6, kernel_size=1,
                             kernel_num=3, temperature=3.0), (2, 8, 5, 4)),
    '1x1-kernel_num1': (dict(in_channels=8, out_channels=6, kernel_size=1,
                             kernel_num=1, bias=True), (2, 8, 5, 4)),
    '3x3-kernel_num1-no-norm': (dict(in_channels=6, out_channels=4,
                                     kernel_size=3, padding=1, kernel_num=1,
                                     attention_norm_cfg=None), (2, 6, 5, 5)),
}
# torch.compile takes seconds per case on 2 cores: two small ones, marked
# (deselect with -m 'not compile').
COMPILED_CASES = ('stride2-T0.5', 'depthwise')


def _oracle_params():
    for case, (cfg, _) in ORACLE_CASES.items():
        factorized = cfg['kernel_size'] == 1 and cfg.get('kernel_num') == 1
        for path in ODCONV_PATHS:
            if path == 'factorized_forward' and not factorized:
                continue
            if path == 'compiled':
                if case in COMPILED_CASES:
                    yield pytest.param(case, path, id=f'{case}-{path}',
                                       marks=pytest.mark.compile)
                continue
            if path == 'cuda':
                yield pytest.param(case, path, id=f'{case}-{path}',
                                   marks=pytest.mark.skipif(
                                       not torch.cuda.is_available(),
                                       reason='no CUDA device'))
                continue
            yield pytest.param(case, path, id=f'{case}-{path}')


def _output_and_grads(forward, m, x, grad_out):
    x = x.detach().requires_grad_()
    params = [x] + list(m.parameters())
    y = forward(m, x)
    grads = torch.autograd.grad(y, params, grad_out.to(y.dtype))
    return [y.float()] + [g.float() for g in grads]


@pytest.mark.parametrize('case, path', list(_oracle_params()))
def test_every_path_equals_oracle(case, path, oracles):
    """Forward and backward of every ODConv2d path against the oracle in
    float64: output, input gradient and the gradient of every parameter
    (candidates, bias, squeeze FC, norm, the four heads) to 1e-5 of their
    scale."""
    cfg, shape = ORACLE_CASES[case]
    m = _randomized(ODConv2d(**cfg)).train()
    assert float(m.temperature) == cfg.get('temperature', 1.0)
    torch.manual_seed(1)
    x = torch.randn(shape)
    with torch.no_grad():
        grad_out = torch.randn_like(oracles.odconv(m, x).float())
    with _no_tf32():  # float32 convs and matmuls on a GPU
        got = _output_and_grads(ODCONV_PATHS[path], m, x, grad_out)
    want = _output_and_grads(oracles.odconv, m, x, grad_out)
    names = ['output', 'x'] + [n for n, _ in m.named_parameters()]
    assert len(got) == len(want) == len(names)
    for name, a, b in zip(names, got, want):
        assert a.shape == b.shape, name
        scale = b.abs().max().item()
        assert scale > 0, name  # every gradient reaches its parameter
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale,
                                   msg=lambda msg, n=name: f'{n}: {msg}')


@pytest.mark.parametrize(
    'cfg, in_shape, out_shape',
    [
        (dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
         (2, 8, 9, 9), (2, 16, 9, 9)),
        (dict(in_channels=8, out_channels=4, kernel_size=3, stride=2,
              padding=1), (3, 8, 9, 7), (3, 4, 5, 4)),
        (dict(in_channels=6, out_channels=6, kernel_size=3, dilation=2,
              padding=2, groups=6, bias=True), (2, 6, 8, 8), (2, 6, 8, 8)),
        (dict(in_channels=8, out_channels=12, kernel_size=(3, 5),
              padding=(1, 2), stride=(2, 1), groups=4), (2, 8, 7, 6),
         (2, 12, 4, 6)),
        (dict(in_channels=8, out_channels=6, kernel_size=1, kernel_num=1,
              bias=True), (2, 8, 5, 5), (2, 6, 5, 5)),
        (dict(in_channels=8, out_channels=6, kernel_size=1, kernel_num=3,
              groups=2), (2, 8, 5, 5), (2, 6, 5, 5)),
    ])
def test_shapes_and_reference(cfg, in_shape, out_shape, oracles):
    torch.manual_seed(0)
    m = ODConv2d(**cfg)
    with torch.no_grad():
        if m.bias is not None:
            m.bias.normal_()
        # Non-zero attention biases so that the attentions are not uniform.
        for fc in (m.channel_fc, m.filter_fc, m.spatial_fc, m.kernel_fc):
            if fc is not None:
                fc.bias.normal_()
    x = torch.randn(in_shape)
    y = m(x)
    assert y.shape == out_shape
    torch.testing.assert_close(y, oracles.odconv(m, x).float(), rtol=1e-4,
                               atol=1e-5)


def test_skipped_attentions():
    dw = ODConv2d(8, 8, 3, groups=8)
    assert dw.filter_fc is None and dw.spatial_fc is not None
    pw = ODConv2d(8, 4, 1, kernel_num=1)
    assert pw.spatial_fc is None and pw.kernel_fc is None
    assert pw.use_factorized and not dw.use_factorized
    a = ODConv2d(8, 4, 3, kernel_num=3).attentions(torch.randn(2, 8, 5, 5))
    assert a.channel.shape == (2, 8) and a.filter.shape == (2, 4)
    assert a.spatial.shape == (2, 3, 3) and a.kernel.shape == (2, 3)
    torch.testing.assert_close(a.kernel.sum(1), torch.ones(2))


def test_forced_attentions_equal_plain_conv(monkeypatch):
    torch.manual_seed(0)
    m = ODConv2d(8, 16, 3, stride=2, padding=1, kernel_num=1, bias=True)
    with torch.no_grad():
        m.bias.normal_()
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)
    conv.weight.data.copy_(m.weight[0])
    conv.bias.data.copy_(m.bias)

    def ones(x):
        b = x.shape[0]
        return ODConvAttention(
            torch.ones(b, 8), torch.ones(b, 16), torch.ones(b, 3, 3), None)

    monkeypatch.setattr(m, 'attentions', ones)
    x = torch.randn(3, 8, 11, 11)
    torch.testing.assert_close(m(x), conv(x), rtol=1e-5, atol=1e-5)


def test_one_hot_kernel_attention_selects_candidate(monkeypatch):
    torch.manual_seed(0)
    m = ODConv2d(4, 4, 3, padding=1, groups=4, kernel_num=4)

    def pick_third(x):
        b = x.shape[0]
        kernel = torch.zeros(b, 4)
        kernel[:, 2] = 1
        return ODConvAttention(
            torch.ones(b, 4), None, torch.ones(b, 3, 3), kernel)

    monkeypatch.setattr(m, 'attentions', pick_third)
    x = torch.randn(2, 4, 6, 6)
    expected = F.conv2d(x, m.weight[2], padding=1, groups=4)
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('groups, out_channels', [(1, 6), (2, 6), (8, 8)])
def test_factorized_equals_general(groups, out_channels):
    torch.manual_seed(0)
    m = ODConv2d(8, out_channels, 1, groups=groups, kernel_num=1, bias=True)
    with torch.no_grad():
        m.bias.normal_()
        m.channel_fc.bias.normal_()
    assert m.use_factorized
    x = torch.randn(3, 8, 5, 4, requires_grad=True)
    y_fast = m(x)
    g_fast = torch.autograd.grad(y_fast.square().sum(), [x, m.weight])
    m.use_factorized = False
    y_general = m(x)
    g_general = torch.autograd.grad(y_general.square().sum(), [x, m.weight])
    torch.testing.assert_close(y_fast, y_general, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_general):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = ODConv2d(8, 16, 3, padding=1, bias=True)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    m(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    # Every candidate kernel is trained, not only the dominant one.
    assert (m.weight.grad.flatten(1).abs().sum(1) > 0).all()


def test_eval_mode_equals_oracle_sample_by_sample(oracles):
    torch.manual_seed(0)
    m = _randomized(ODConv2d(8, 8, 3, padding=1, groups=8)).eval()
    x = torch.randn(4, 8, 7, 7)
    with torch.no_grad():
        y = m(x)
        torch.testing.assert_close(y, oracles.odconv(m, x).float(),
                                   rtol=1e-5, atol=1e-5)
        # The attentions are per sample: a batch of one gives the same.
        torch.testing.assert_close(m(x[2:3]),
                                   oracles.odconv(m, x[2:3]).float(),
                                   rtol=1e-5, atol=1e-5)


def test_batch_size_one_training_step():
    torch.manual_seed(0)
    m = nn.Sequential(ODConv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8))
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    before = m[0].weight.detach().clone()
    x = torch.randn(1, 4, 5, 5)
    loss = m(x).relu().mean()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, m[0].weight)


def test_temperature():
    torch.manual_seed(0)
    m = ODConv2d(8, 8, 3, kernel_num=4)
    with torch.no_grad():
        m.kernel_fc.bias.copy_(torch.tensor([3., 0., -1., 2.]))
    x = torch.randn(2, 8, 5, 5)
    sharp = m.attentions(x).kernel
    m.update_temperature(1e4)
    flat = m.attentions(x).kernel
    torch.testing.assert_close(flat, torch.full_like(flat, 0.25), rtol=0,
                               atol=1e-3)
    assert sharp.max() > 0.4
    for bad in (0, -1.0, float('inf'), float('nan')):
        with pytest.raises(ValueError, match='temperature'):
            m.update_temperature(bad)


def test_init_is_per_candidate_kaiming():
    torch.manual_seed(0)
    m = ODConv2d(64, 64, 3, groups=1, kernel_num=4)
    # kaiming_normal_, fan_out of one candidate: std = sqrt(2 / (64 * 9)).
    expected = (2 / (64 * 9))**0.5
    stds = m.weight.flatten(1).std(1)
    torch.testing.assert_close(
        stds, torch.full_like(stds, expected), rtol=0.05, atol=0)
    # The candidates differ, else the kernel attention is useless.
    assert not torch.allclose(m.weight[0], m.weight[1])


def test_build_via_mmcv_and_registries():
    conv = build_conv_layer(dict(type='ODConv2d'), 8, 16, 3, padding=1)
    assert isinstance(conv, ODConv2d)
    assert conv(torch.randn(2, 8, 6, 6)).shape == (2, 16, 6, 6)

    block = ConvModule(8, 16, 3, conv_cfg=dict(type='ODConv2d', kernel_num=2))
    assert isinstance(block.conv, ODConv2d) and block.conv.kernel_num == 2
    assert block.kernel_size == (3, 3) and block.transposed is False
    assert block.conv.bias is not None  # bias='auto' without a norm
    assert block(torch.randn(2, 8, 6, 6)).shape == (2, 16, 4, 4)
    # ConvModule skipped its kaiming_init (which would treat the 5-D weight
    # as one kernel) because ODConv2d has init_weights.
    expected = (2 / (16 * 9))**0.5
    assert abs(block.conv.weight.std().item() / expected - 1) < 0.1

    bn_block = ConvModule(
        8, 8, 3, padding=1, groups=8, conv_cfg=dict(type='ODConv2d'),
        norm_cfg=dict(type='BN'))
    assert bn_block.conv.bias is None
    assert bn_block(torch.randn(1, 8, 5, 5)).shape == (1, 8, 5, 5)

    from mmengine.registry import MODELS as ROOT
    from mmpretrain.registry import MODELS
    assert isinstance(MODELS.build(dict(type='ODConv2d', in_channels=4,
                                        out_channels=4, kernel_size=3)),
                      ODConv2d)
    assert ROOT.get('ODConv2d') is ODConv2d


def test_loads_plain_conv_weight_into_every_candidate():
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    m = ODConv2d(8, 8, 3, padding=1, groups=8, kernel_num=3)
    state = {k: v for k, v in m.state_dict().items() if k != 'weight'}
    state['weight'] = conv.weight.detach()
    m.load_state_dict(state)
    for i in range(3):
        torch.testing.assert_close(m.weight[i], conv.weight)
    # A kernel of another shape is still refused by the strict loader.
    state['weight'] = torch.zeros(8, 1, 5, 5)
    with pytest.raises(RuntimeError, match='size mismatch'):
        m.load_state_dict(state)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=6, out_channels=8, kernel_size=3, groups=4), 'groups'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, kernel_num=0),
     'kernel_num'),
    (dict(in_channels=4, out_channels=4, kernel_size=3,
          padding_mode='reflect'), 'padding_mode'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ODConv2d(**kwargs)


def test_bad_input():
    m = ODConv2d(4, 4, 3)
    with pytest.raises(ValueError, match=r'\(B, 4, H, W\)'):
        m(torch.randn(1, 3, 5, 5))


def test_temperature_is_saved_with_the_weights():
    # A checkpoint from epoch 3 of a 30 -> 1 anneal must be evaluated at
    # the temperature it was trained with.
    conv = ODConv2d(8, 8, 3, padding=1, kernel_num=4)
    conv.update_temperature(12.5)
    state = conv.state_dict()
    assert float(state['temperature']) == 12.5
    fresh = ODConv2d(8, 8, 3, padding=1, kernel_num=4)
    fresh.load_state_dict(state, strict=True)
    assert float(fresh.temperature) == 12.5
    x = torch.randn(2, 8, 6, 6)
    fresh.eval(), conv.eval()
    assert torch.allclose(fresh(x), conv(x))

    # Older checkpoints without the buffer keep the current temperature.
    del state['temperature']
    fresh.update_temperature(3.0)
    fresh.load_state_dict(state, strict=True)
    assert float(fresh.temperature) == 3.0
