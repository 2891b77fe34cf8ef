"""Swish, ``x * sigmoid(x)``, that keeps only its input for the backward."""
import torch
from mmengine.registry import MODELS
from torch import nn
from torch.autograd.function import once_differentiable


class _Swish(torch.autograd.Function):
    """``x * sigmoid(x)`` computed by the same two ops as mmcv's ``Swish``
    (so the forward is bit for bit the same), saving ``x`` only: autograd
    through the two ops keeps ``x`` and ``sigmoid(x)``, two full-size maps.
    The backward recomputes the sigmoid and applies the same two backward
    formulas autograd would."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * s + torch.ops.aten.sigmoid_backward(grad * x, s)


@MODELS.register_module()
class MemoryEfficientSwish(nn.Module):
    """mmcv's ``Swish`` (``x * sigmoid(x)``, EfficientNetV2's activation)
    with half its activation memory: the backward keeps the input only and
    recomputes the sigmoid. Same outputs and gradients; no parameters, so
    checkpoints are unaffected. EfficientNet-DSP's configs use it
    (``act_cfg``); ``docs/gpu.md`` gives what it saves.

    Args:
        inplace (bool): Accepted because :class:`mmcv.cnn.ConvModule` passes
            it to every activation; the result is always a new tensor.
            Defaults to False.
    """

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad \
                and not torch.compiler.is_compiling():
            return _Swish.apply(x)
        return x * torch.sigmoid(x)
