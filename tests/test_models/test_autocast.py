"""Every DSP brick and the model train under mixed precision (``--amp``).

CPU bf16 autocast stands in for CUDA fp16 here: it mixes dtypes the same way
(convolutions and matmuls in half precision, sigmoid and norms in fp32),
which is what custom autograd functions must cope with.
"""
import pytest
import torch
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401

BRICKS = {
    'SAR': (dict(type='SAR', in_channels=32, groups=8), 32),
    'SAR-7x7': (dict(type='SAR', in_channels=32, groups=8), 32),
    'SE': (dict(type='SE', in_channels=32, squeeze_channels=8), 32),
    'ECA': (dict(type='ECA', in_channels=32), 32),
    'CBAM': (dict(type='CBAM', in_channels=32), 32),
    'DyReLU': (dict(type='DyReLU', channels=32), 32),
    'DyDropBlock': (dict(type='DyDropBlock', drop_prob=0.2,
                         block_size=3), 32),
    'ODConv2d': (dict(type='ODConv2d', in_channels=32, out_channels=32,
                      kernel_size=3, padding=1, groups=32), 32),
    'ODConv2d-dense': (dict(type='ODConv2d', in_channels=32,
                            out_channels=32, kernel_size=3, padding=1,
                            temperature=2.0), 32),
    'DyODConv': (dict(type='DyODConv', in_channels=32, out_channels=32,
                      kernel_size=3, groups=32), 32),
}


def _randomized(brick):
    # Non-trivial parameters: no attention uniform, no gate at 0.5.
    with torch.no_grad():
        for p in brick.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return brick


def _run(brick, x, grad, autocast):
    """Output and the gradients of input and parameters; DyDropBlock draws
    the same seeds (torch.manual_seed(1)) in both precisions."""
    x = x.detach().requires_grad_()
    params = [x] + list(brick.parameters())
    torch.manual_seed(1)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = brick(x)
    grads = torch.autograd.grad(out, params, grad.to(out.dtype))
    return [out] + list(grads)


@pytest.mark.parametrize('name', sorted(BRICKS))
def test_brick_bf16_close_to_float32(name):
    """Under bf16 autocast (a preceding conv hands the brick a bf16 map, as
    in the network) every brick gives what float32 gives on the same input
    values, to the stated tolerance:

    * output: ``max |bf16 - fp32| <= 2 %`` of ``max |fp32|`` (measured up
      to 1.0 %, bf16 rounds to 0.4 %);
    * input and parameter gradients: relative L2 error ``<= 15 %`` and
      finite (measured up to 11 %: a rounded input or coefficient moves
      DyReLU's kinks, and per-sample sums of the attention biases and of
      the batch norm cancel).
    """
    cfg, channels = BRICKS[name]
    size = 7 if name.endswith('7x7') else 14
    torch.manual_seed(0)
    brick = _randomized(MODELS.build(cfg).train())
    x = torch.randn(2, channels, size, size).bfloat16()
    with torch.no_grad():
        torch.manual_seed(1)
        grad = torch.randn_like(brick(x.float()))
    exact = _run(brick, x.float(), grad, autocast=False)
    low = _run(brick, x, grad, autocast=True)
    assert low[0].dtype == torch.bfloat16  # the network stays in bf16
    assert len(low) == len(exact) == 2 + len(list(brick.parameters()))
    out, ref = low[0].float(), exact[0]
    assert (out - ref).abs().max() <= 0.02 * ref.abs().max(), name
    names = ['x'] + [n for n, _ in brick.named_parameters()]
    for pname, a, e in zip(names, low[1:], exact[1:]):
        a = a.float()
        assert torch.isfinite(a).all(), pname
        assert (a - e).norm() <= 0.15 * e.norm(), pname


def test_backbone_bf16_close_to_float32():
    """The whole EfficientNet-DSP-B0 backbone (Dy-MBConv stages 2-3, SAR,
    the configs' MemoryEfficientSwish) in eval mode, its batch norms set
    to the statistics of a batch (at their initial values the activations
    vanish, 1e-7 at the end): each stage output under bf16 autocast within
    the stated relative L2 error of float32: 4 % after stage 2, 12 % after
    stage 4, 40 % at the end (measured 2.0 %, 6.5 %, 23 %). A random deep
    network amplifies rounding: MMPretrain's EfficientNetV2-B0 ends 8-11 %
    off, the dynamic stages (DyReLU's kinks) double that at every depth,
    with the reference forwards as well."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='EfficientNetDSP', arch='b0',
             attention_cfg=dict(type='SAR', groups=16),
             act_cfg=dict(type='MemoryEfficientSwish'),
             out_indices=(2, 4, 7)))
    assert model.block_kinds[2] == model.block_kinds[3] == 'dy'
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running statistics = this batch's
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 64, 64))
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        refs = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
    for out, ref, tol in zip(outs, refs, (0.04, 0.12, 0.4)):
        assert out.dtype == torch.bfloat16
        assert ref.abs().mean() > 0.1  # not a vanished signal
        err = (out.float() - ref).norm() / ref.norm()
        assert err <= tol, (tuple(ref.shape), err)


def test_model_trains_under_autocast():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='EfficientNetDSP',
                arch='b0',
                attention_cfg=dict(type='SAR', groups=16)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=4,
                in_channels=1280,
                loss=dict(type='PolyFocalLoss', omega=[1., 2., 1., 1.]))))
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
        loss = model.head.loss_module(logits, torch.tensor([0, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
