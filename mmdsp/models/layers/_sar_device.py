"""Portable forward of :class:`~mmdsp.models.layers.SAR` (private): the path
of CUDA and every other device, and of channels_last tensors anywhere.

The same math as :func:`~mmdsp.models.layers.sar.sar_reference`. The strips
(eqs. 3-6) are small and go through the modules as they are; the full-size
part, ``x + shuffle(x * y^h * y^w)`` (eq. 7, the shuffle, the residual), is
one autograd function that

- keeps the dtype of ``x`` (under fp16 / bf16 autocast the float32 gates are
  cast down, so neither the output nor anything saved is float32);
- keeps the memory format of ``x`` (the shuffle is a view of the channel
  axis, which NCHW and channels_last both allow);
- saves ``x`` and the two strips only: the gate ``y^h * y^w`` is recomputed
  in the backward, one cheap product, instead of storing a second full-size
  map (``docs/gpu.md``).
"""
import torch
from torch.autograd.function import once_differentiable

from ._sar_kernels import strip_gates_by_modules


def sar_device(sar, x):
    """The portable forward of ``sar`` (a :class:`SAR`).

    Args:
        sar (SAR): The module, whose parameters and options are used.
        x (Tensor): Input of shape (N, C, H, W), already checked.

    Returns:
        Tensor: The output of ``sar_reference``, up to float rounding, in the
        dtype and memory format of ``x``.
    """
    if not _viewable(x):
        x = x.contiguous()
    # eqs. 3-6 on the strips; the gates come back channel-shuffled.
    y_h, y_w = strip_gates_by_modules(sar, x.mean(dim=3), x.mean(dim=2))
    return _GatedShuffle.apply(x, y_h.to(x.dtype), y_w.to(x.dtype),
                               sar.shuffle_groups, sar.residual)


def _viewable(x):
    """Whether the channel axis of ``x`` can be split by a view: NCHW or
    channels_last memory."""
    return x.is_contiguous() or x.is_contiguous(
        memory_format=torch.channels_last)


def _memory_format(x):
    return (torch.channels_last if not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last) else
            torch.contiguous_format)


def _output_order(t, s):
    """``t`` (N, C, H, W) as (N, C/s, s, H, W) in the shuffled channel order:
    element ``[:, a, b]`` is channel ``b * C/s + a``, which the shuffle puts
    at ``a * s + b``. A view."""
    n, c, h, w = t.shape
    return t.view(n, s, c // s, h, w).transpose(1, 2)


def _gate(y_h, y_w, s, h, w):
    """``y^h * y^w`` as (N, C/s, s, H, W), in output channel order."""
    n, c = y_h.shape[:2]
    return y_h.view(n, c // s, s, h, 1) * y_w.view(n, c // s, s, 1, w)


class _GatedShuffle(torch.autograd.Function):
    """``out = [x +] shuffle(x * y^h * y^w)`` with the strips ``y_h``
    (N, C, H) and ``y_w`` (N, C, W) already in output channel order."""

    @staticmethod
    def forward(ctx, x, y_h, y_w, shuffle_groups, residual):
        n, c, h, w = x.shape
        s = shuffle_groups
        ctx.shuffle_groups, ctx.residual = s, residual
        ctx.save_for_backward(x, y_h, y_w)
        out = torch.empty_like(x)
        out5 = out.view(n, c // s, s, h, w)
        gated = _output_order(x, s)
        if residual:
            torch.addcmul(x.view(n, c // s, s, h, w), gated,
                          _gate(y_h, y_w, s, h, w), out=out5)
        else:
            torch.mul(gated, _gate(y_h, y_w, s, h, w), out=out5)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, y_h, y_w = ctx.saved_tensors
        n, c, h, w = x.shape
        s = ctx.shuffle_groups
        grad = grad.contiguous(memory_format=_memory_format(x))
        grad5 = grad.view(n, c // s, s, h, w)
        grad_x = grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
            # Written through the shuffled view: back to x's channel order
            # without a copy.
            torch.mul(grad5, _gate(y_h, y_w, s, h, w),
                      out=_output_order(grad_x, s))
            if ctx.residual:
                grad_x += grad
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_gate = grad5 * _output_order(x, s)
            grad_h = (grad_gate * y_w.view(n, c // s, s, 1, w)).sum(4)
            grad_w = (grad_gate * y_h.view(n, c // s, s, h, 1)).sum(3)
            grad_h, grad_w = grad_h.view_as(y_h), grad_w.view_as(y_w)
        return grad_x, grad_h, grad_w, None, None
