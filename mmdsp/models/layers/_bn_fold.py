"""Training-mode BatchNorm folded into the activation after it (private).

In training, BatchNorm is a per-channel affine of its input ``y`` with the
batch's statistics: ``BN(y) = s * (y - mean) + beta``. An activation right
after it can therefore take ``y`` and the small ``mean``, ``s``, ``beta``
and recompute the normalised map in its backward, so that only ``y`` (which
BN alone keeps too) is saved, not the normalised map as well. Used by the
Dy-ODConv unit (BN + DyReLU, ``_dyrelu_device.py``) and by Dy-MBConv's
expansion conv (BN + Swish, :class:`~mmdsp.models.layers.FoldedConvModule`);
``docs/gpu.md`` gives the memory this saves.
"""
import torch
from torch.autograd.function import once_differentiable


class _BatchStats(torch.autograd.Function):
    """Per-channel mean and ``1 / sqrt(var + eps)`` of ``y`` (N, C, H, W)
    over (N, H, W), in float32, as training-mode BatchNorm computes them
    (biased variance). Saves ``y`` only."""

    @staticmethod
    def forward(ctx, y, eps):
        var, mean = torch.var_mean(y.float(), dim=(0, 2, 3), correction=0)
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(y, mean, invstd)
        return mean, invstd

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_mean, grad_invstd):
        y, mean, invstd = ctx.saved_tensors
        m = y.numel() // y.size(1)
        # d invstd / d y = -invstd^3 (y - mean) / m; d mean / d y = 1 / m.
        slope = (-grad_invstd * invstd.pow(3) / m).to(y.dtype)[:, None, None]
        shift = (grad_mean / m).to(y.dtype)[:, None, None]
        centred = y - mean.to(y.dtype)[:, None, None]
        return torch.addcmul(shift, centred, slope), None


def batch_stats(bn, y):
    """The batch's mean and inverse std of ``y`` for the training-mode
    BatchNorm ``bn``, differentiable, with ``bn``'s running statistics
    updated as its own forward updates them (momentum, or a cumulative
    average when it is None)."""
    mean, invstd = _BatchStats.apply(y, bn.eps)
    if bn.running_mean is not None:
        with torch.no_grad():
            factor = bn.momentum
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
                if factor is None:
                    factor = 1.0 / float(bn.num_batches_tracked)
            count = y.numel() // y.size(1)
            var = (invstd.pow(-2) - bn.eps) * (count / max(count - 1, 1))
            bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype),
                                  factor)
            bn.running_var.lerp_(var.to(bn.running_var.dtype), factor)
    return mean, invstd


def bn_affine(bn, invstd):
    """``(scale, shift)`` of ``BN(y) = scale * (y - mean) + shift``."""
    scale = invstd if bn.weight is None else invstd * bn.weight
    shift = (torch.zeros_like(invstd) if bn.bias is None else bn.bias)
    return scale, shift


def _per_channel(t, like):
    return t.to(like.dtype)[:, None, None]


class _AffineSwish(torch.autograd.Function):
    """``swish(scale * (y - mean) + shift)`` with per-channel ``mean``,
    ``scale``, ``shift``, saving ``y`` and those three only."""

    @staticmethod
    def forward(ctx, y, mean, scale, shift):
        ctx.save_for_backward(y, mean, scale, shift)
        x = _affine(y, mean, scale, shift)
        return x * torch.sigmoid(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        y, mean, scale, shift = ctx.saved_tensors
        centred = y - _per_channel(mean, y)
        x = torch.addcmul(_per_channel(shift, y), centred,
                          _per_channel(scale, y))
        grad_x = torch.ops.aten.silu_backward(grad, x)
        del x
        sums = dict(dtype=torch.float32, dim=(0, 2, 3))
        grad_shift = grad_x.sum(**sums)
        grad_scale = (grad_x * centred).sum(**sums)
        grad_y = grad_x.mul_(_per_channel(scale, y))
        grad_mean = -grad_y.sum(**sums)
        return (grad_y, grad_mean.to(mean.dtype), grad_scale.to(scale.dtype),
                grad_shift.to(shift.dtype))


def _affine(y, mean, scale, shift):
    return torch.addcmul(_per_channel(shift, y), y - _per_channel(mean, y),
                         _per_channel(scale, y))


def bn_swish_train(bn, y):
    """``swish(bn(y))`` for a training-mode BatchNorm2d, keeping ``y``
    only for the backward (module docstring).

    Args:
        bn (nn.BatchNorm2d): In training mode.
        y (Tensor): The conv output, (N, C, H, W).

    Returns:
        Tensor: In ``y``'s dtype and memory format; ``bn``'s running
        statistics are updated.
    """
    mean, invstd = batch_stats(bn, y)
    scale, shift = bn_affine(bn, invstd)
    return _AffineSwish.apply(y, mean, scale, shift)
