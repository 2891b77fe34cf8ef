"""The GPU path of the bricks, checked on a CPU: dtype under fp16 / bf16
autocast, channels_last forward and backward, no float32 activation map
saved for the backward, and the kernels chosen by device.

``use_impl('device')`` runs the kernels CUDA gets on CPU tensors; ``'fast'``
picks the CPU kernels for NCHW CPU tensors and the device kernels otherwise.
"""
import pytest
import torch
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401
from mmdsp.models.layers import use_impl
from mmdsp.models.layers._impl import kernels_for

BRICKS = {
    'SAR': dict(type='SAR', in_channels=32, groups=8),
    'SE': dict(type='SE', in_channels=32, squeeze_channels=8),
    'ECA': dict(type='ECA', in_channels=32),
    'CBAM': dict(type='CBAM', in_channels=32),
    'DyReLU': dict(type='DyReLU', channels=32),
    'DyDropBlock': dict(type='DyDropBlock', drop_prob=0.2, block_size=3),
    'ODConv2d': dict(type='ODConv2d', in_channels=32, out_channels=32,
                     kernel_size=3, padding=1, groups=32),
    'ODConv2d-dense': dict(type='ODConv2d', in_channels=32, out_channels=16,
                           kernel_size=3, padding=1),
    'DyODConv': dict(type='DyODConv', in_channels=32, out_channels=32,
                     kernel_size=3, groups=32),
    'MemoryEfficientSwish': dict(type='MemoryEfficientSwish'),
}
DTYPES = [torch.bfloat16, torch.float16]


def _brick(name):
    torch.manual_seed(0)
    return MODELS.build(BRICKS[name]).train()


class SavedFloat32:
    """Float32 activation maps autograd saves: 4-D tensors with a spatial
    extent and ``min_numel`` elements or more. Small per-channel gates,
    strips and statistics may stay float32."""

    def __init__(self, min_numel):
        self.min_numel = min_numel
        self.found = []

    def pack(self, t):
        if t.dtype == torch.float32 and t.dim() == 4 and t.shape[2] > 1 \
                and t.shape[3] > 1 and t.numel() >= self.min_numel:
            self.found.append(tuple(t.shape))
        return t

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(
            self.pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


@pytest.mark.parametrize('impl', ['fast', 'device'])
@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('name', sorted(BRICKS))
def test_brick_stays_in_autocast_dtype(name, dtype, impl):
    brick = _brick(name)
    # A preceding conv hands the brick a half-precision map.
    x = torch.randn(2, 32, 12, 12).to(dtype).requires_grad_()
    with use_impl(impl), torch.autocast('cpu', dtype=dtype), \
            SavedFloat32(min_numel=2 * 8 * 12 * 12) as saved:
        out = brick(x)
    assert out.dtype == dtype, f'{name} returned {out.dtype}'
    assert saved.found == [], f'{name} saved float32 maps {saved.found}'
    out.float().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()


@pytest.mark.parametrize('impl', ['fast', 'device'])
@pytest.mark.parametrize('name', sorted(BRICKS))
def test_brick_keeps_channels_last(name, impl):
    brick = _brick(name)
    x = torch.randn(2, 32, 12, 12).contiguous(
        memory_format=torch.channels_last)
    ref_x = x.detach().contiguous().requires_grad_()
    x.requires_grad_()
    torch.manual_seed(1)
    with use_impl(impl):
        out = brick(x)
    assert out.is_contiguous(memory_format=torch.channels_last), name
    grad = torch.randn_like(out)
    out.backward(grad)
    assert x.grad.is_contiguous(memory_format=torch.channels_last), name
    # The same values as the reference forward on the NCHW copy.
    brick.zero_grad()
    torch.manual_seed(1)
    with use_impl('reference'):
        ref = brick(ref_x)
    ref.backward(grad.contiguous())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(x.grad, ref_x.grad, atol=1e-5, rtol=1e-4)


def _dsp_b0():
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='EfficientNetDSP', arch='b0', attention_cfg=dict(type='SAR'),
             dy_stages=(2, 3), dy_cfg=dict(kernel_num=4),
             dropblock_cfg=dict(start=0., final=0.1, block_size=7),
             act_cfg=dict(type='MemoryEfficientSwish'))).train()


@pytest.mark.parametrize('impl', ['fast', 'device'])
def test_backbone_channels_last_end_to_end(impl):
    # Only the input is channels_last: convolutions follow their input's
    # layout, and every brick must keep it.
    model = _dsp_b0()
    x = torch.randn(2, 3, 64, 64).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    layouts = []

    def record(module, args, out):
        if out.dim() == 4 and out.size(1) > 1 and out.size(2) > 1:
            layouts.append((type(module).__name__, out.is_contiguous(
                memory_format=torch.channels_last)))

    handles = [
        m.register_forward_hook(record) for m in model.modules()
        if type(m).__name__ in ('SAR', 'DyODConv', 'ODConv2d', 'DyReLU',
                                'DyDropBlock', 'DyMBConv', 'MBConvDSP',
                                'FusedMBConvDSP')
    ]
    with use_impl(impl):
        out = model(x)[-1]
    for h in handles:
        h.remove()
    assert layouts and all(cl for _, cl in layouts), \
        [name for name, cl in layouts if not cl]
    assert out.is_contiguous(memory_format=torch.channels_last)
    out.sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('impl', ['fast', 'device'])
def test_backbone_saves_no_float32_map_under_autocast(impl, dtype):
    model = _dsp_b0()
    x = torch.randn(2, 3, 64, 64)
    with use_impl(impl), torch.autocast('cpu', dtype=dtype), \
            SavedFloat32(min_numel=2 * 16 * 8 * 8) as saved:
        out = model(x)[-1]
    assert out.dtype == dtype
    assert saved.found == [], saved.found


def test_kernels_chosen_by_device():
    x = torch.zeros(1, 4, 3, 3)
    with use_impl('fast'):
        assert kernels_for(x) == 'cpu'
        assert kernels_for(x.contiguous(
            memory_format=torch.channels_last)) == 'device'
        assert kernels_for(x.to('meta')) == 'device'
    with use_impl('device'):
        assert kernels_for(x) == 'device'
    with use_impl('reference'):
        assert kernels_for(x.to('meta')) == 'reference'


def _saved_bytes(fn):
    seen, total = set(), [0]

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total[0]


@pytest.mark.parametrize('impl', ['fast', 'device'])
@pytest.mark.parametrize('act', ['Swish', 'MemoryEfficientSwish'])
def test_folded_conv_module_is_conv_module_with_one_map(act, impl):
    """BN folded into the Swish: ConvModule's outputs, gradients and
    running statistics, and on the device kernels one full-size map saved
    instead of two."""
    from mmcv.cnn import ConvModule

    from mmdsp.models.layers import fold_bn_act
    torch.manual_seed(0)
    plain = ConvModule(8, 16, 1, norm_cfg=dict(type='BN'),
                       act_cfg=dict(type=act)).train()
    with torch.no_grad():
        plain.norm.weight.uniform_(0.5, 1.5)
        plain.norm.bias.uniform_(-0.5, 0.5)
    folded = fold_bn_act(ConvModule(8, 16, 1, norm_cfg=dict(type='BN'),
                                    act_cfg=dict(type=act)).train())
    folded.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 16, 16) * 3 + 1
    results = []
    for module in (plain, folded):
        xi = x.clone().requires_grad_()
        with use_impl(impl):
            out, saved = _saved_bytes(lambda: module(xi))
        out.backward(torch.cos(out))
        results.append((out, xi.grad, saved, module))
    (out_p, grad_p, saved_p, _), (out_f, grad_f, saved_f, _) = results
    torch.testing.assert_close(out_f, out_p, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grad_f, grad_p, atol=1e-5, rtol=1e-4)
    for a, b in zip(plain.parameters(), folded.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-4, rtol=1e-4)
    for a, b in zip(plain.buffers(), folded.buffers()):
        torch.testing.assert_close(b, a)
    map_bytes = out_p.numel() * 4
    if impl == 'device':
        # Plain keeps the conv output and the BN output (and Swish's
        # sigmoid).
        assert saved_f <= saved_p - map_bytes + map_bytes // 8
    else:  # the CPU keeps its oneDNN BN
        assert saved_f == saved_p


def test_dy_mbconv_folds_its_expansion():
    from mmdsp.models.layers import FoldedConvModule
    model = _dsp_b0()
    dy = [m for m in model.modules() if type(m).__name__ == 'DyMBConv']
    assert dy and all(type(m.expand_conv) is FoldedConvModule for m in dy
                      if m.with_expand_conv)
