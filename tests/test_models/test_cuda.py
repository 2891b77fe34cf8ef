"""What only a CUDA GPU can show: the device kernels on real CUDA tensors
against the reference forwards, and one mixed-precision training step of
each model. Skipped without a GPU; ``tools/gpu/check.sh`` runs them
(``pytest -m cuda``)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401
from mmdsp.models.layers import use_impl
from mmdsp.models.layers._impl import kernels_for

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA'),
]
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The bricks with a device kernel, and CBAM (deterministic max pool), at
# 64 channels.
BRICKS = {
    'SAR': dict(groups=8),
    'DyReLU': dict(channels=64),
    'DyDropBlock': dict(drop_prob=0.2, block_size=3),
    'ODConv2d': dict(out_channels=64, kernel_size=3, padding=1, groups=64),
    'DyODConv': dict(out_channels=64, kernel_size=3, groups=64),
    'CBAM': {},
}


def _brick(name):
    cfg = dict(type=name, **BRICKS[name])
    if name not in ('DyReLU', 'DyDropBlock'):
        cfg['in_channels'] = 64
    return MODELS.build(cfg).cuda().train()


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('name', sorted(BRICKS))
def test_device_kernels_match_reference(name, channels_last):
    torch.manual_seed(0)
    brick = _brick(name)
    x = torch.randn(4, 64, 14, 14, device='cuda')
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert kernels_for(x) == 'device'
    results = []
    for impl in ('fast', 'reference'):
        xi = x.detach().clone().requires_grad_()
        brick.zero_grad()
        torch.manual_seed(1)
        with use_impl(impl):
            out = brick(xi)
        out.backward(torch.ones_like(out))
        results.append([out, xi.grad] + [p.grad for p in brick.parameters()
                                          if p.grad is not None])
        if impl == 'fast' and channels_last:
            assert out.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize('name', sorted(BRICKS))
def test_device_kernels_keep_autocast_dtype(name, dtype):
    brick = _brick(name)
    x = torch.randn(4, 64, 14, 14, device='cuda', dtype=dtype,
                    requires_grad=True)
    with torch.autocast('cuda', dtype=dtype):
        out = brick(x)
    assert out.dtype == dtype
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize('config',
                         ['effdsp_all.py', 'efficientnetv2-s_all.py'])
def test_amp_train_step(config, dtype):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.backbone.arch = 'b0'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).cuda().train()
    loss_module = model.head.loss_module
    if getattr(loss_module, 'auto_omega', False):
        loss_module.set_omega([1.0, 0.5, 0.5, 0.6])
    x = torch.randn(8, 3, 128, 128, device='cuda').contiguous(
        memory_format=torch.channels_last)
    labels = torch.arange(8, device='cuda') % 4
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)
    with torch.autocast('cuda', dtype=dtype):
        logits = model(x, mode='tensor')
        loss = loss_module(logits.float(), labels)
    scaler.scale(loss).backward()
    scaler.step(optim)
    scaler.update()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # Eval outputs of the device kernels against the reference forwards.
    model.eval()
    with torch.no_grad():
        fast = model(x, mode='tensor')
        with use_impl('reference'):
            ref = model(x, mode='tensor')
    torch.testing.assert_close(fast, ref, atol=1e-3, rtol=1e-3)
