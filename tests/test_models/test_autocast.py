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
    'DyODConv': (dict(type='DyODConv', in_channels=32, out_channels=32,
                      kernel_size=3, groups=32), 32),
}


@pytest.mark.parametrize('name', sorted(BRICKS))
def test_brick_backward_under_autocast(name):
    cfg, channels = BRICKS[name]
    size = 7 if name.endswith('7x7') else 14
    torch.manual_seed(0)
    brick = MODELS.build(cfg).train()
    x = torch.randn(2, channels, size, size, requires_grad=True)
    weight = torch.randn(channels, channels, 1, 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        # A preceding conv hands the brick a bf16 map, as in the network.
        out = brick(torch.nn.functional.conv2d(x, weight))
    out.float().square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for param in brick.parameters():
        assert param.grad is None or torch.isfinite(param.grad).all()


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
