"""Lean forwards of :class:`~mmdsp.models.layers.DyReLU` (private): the path
of CUDA, other devices and channels_last tensors, and the training forward
of the Dy-ODConv unit's norm and activation on every device.

The same math as :func:`~mmdsp.models.layers.dyrelu.max_of_pieces`, written
so that the backward keeps as little as possible (``docs/gpu.md``):

- :class:`_TwoPieceMax` saves its input and the small coefficients, in the
  input's dtype (no float32 map under autocast), and recomputes in the
  backward which piece won, instead of storing a full-size mask;
- :func:`bn_dyrelu_train` folds a training-mode BatchNorm into the pieces
  (``_bn_fold.py``): ``a_j * BN(y) + b_j = A_j * (y - mean) + B_j`` and
  DyReLU's pooled input is ``s * (mean_hw(y) - mean) + beta``. Only ``y``,
  which BN alone would save too, is kept: not the normalised map, which BN
  followed by DyReLU would save a second time.

Elementwise ops keep the input's memory format.
"""
import torch
from torch.autograd.function import once_differentiable

from ._bn_fold import batch_stats, bn_affine
from ._dyrelu_kernels import coefficients


class _TwoPieceMax(torch.autograd.Function):
    """``max(a0 d + b0, a1 d + b1)`` with ``d = y - mu``, per-(sample,
    channel) ``a``, ``b`` and a per-channel ``mu`` (None: ``d = y``).

    Ties go to the first piece, as in the CPU kernel.
    """

    @staticmethod
    def forward(ctx, y, mu, coef):
        ctx.save_for_backward(y, mu, coef)
        d, pieces = _pieces(y, mu, coef)
        return torch.maximum(*pieces, out=pieces[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        y, mu, coef = ctx.saved_tensors
        d, (first, second) = _pieces(y, mu, coef)
        # The same comparison as the forward's maximum: the same winner.
        grad_second = grad * torch.gt(second, first).to(grad.dtype)
        del first, second
        a0, a1 = (t.to(y.dtype) for t in _split(coef)[:2])
        grad_d = torch.addcmul(grad * a0, grad_second, a1 - a0)
        grad_mu = grad_coef = None
        if ctx.needs_input_grad[1]:
            grad_mu = -grad_d.sum((0, 2, 3), dtype=torch.float32).to(mu.dtype)
        if ctx.needs_input_grad[2]:
            # The first piece's sums are the totals minus the second's.
            sums = [(grad * d).sum((2, 3), dtype=torch.float32),
                    (grad_second * d).sum((2, 3), dtype=torch.float32),
                    grad.sum((2, 3), dtype=torch.float32),
                    grad_second.sum((2, 3), dtype=torch.float32)]
            grad_coef = torch.stack([sums[0] - sums[1], sums[1],
                                     sums[2] - sums[3], sums[3]],
                                    dim=2).to(coef.dtype)
        return grad_d if ctx.needs_input_grad[0] else None, grad_mu, grad_coef


def _split(coef):
    """``a0, a1, b0, b1`` of coefficients (N, C, 4), each (N, C, 1, 1)."""
    return [coef[:, :, i, None, None] for i in range(4)]


def _pieces(y, mu, coef):
    """``d`` and both pieces, in ``y``'s dtype and memory format."""
    d = y if mu is None else y - mu.to(y.dtype)[:, None, None]
    a0, a1, b0, b1 = (t.to(y.dtype) for t in _split(coef))
    return d, (torch.addcmul(b0, d, a0), torch.addcmul(b1, d, a1))


def two_piece_max(x, coef, mu=None):
    """``max_j (a^j (x - mu) + b^j)`` for k = 2, coefficients laid out as
    :meth:`DyReLU.coefficients` returns them (N, C, 4); ``mu`` a
    per-channel offset or None."""
    return _TwoPieceMax.apply(x, mu, coef)


def bn_dyrelu_train(bn, dyrelu, y):
    """``dyrelu(bn(y))`` for a training-mode BatchNorm2d and a two-piece
    DyReLU, without the normalised map (module docstring).

    Args:
        bn (nn.BatchNorm2d): In training mode.
        dyrelu (DyReLU): With ``k == 2``.
        y (Tensor): The conv output, (N, C, H, W).

    Returns:
        Tensor: The output of the norm and the activation, in ``y``'s dtype
        and memory format; ``bn``'s running statistics are updated.
    """
    mean, invstd = batch_stats(bn, y)
    scale, shift = bn_affine(bn, invstd)
    # mean over H, W of BN(y): DyReLU's pooled input.
    pooled = (y.mean(dim=(2, 3), dtype=torch.float32) - mean) * scale + shift
    coef = coefficients(dyrelu, pooled)  # (N, C, 4): a0, a1, b0, b1
    slopes = coef[:, :, :2] * scale[:, None]
    intercepts = coef[:, :, 2:] + coef[:, :, :2] * shift[:, None]
    return _TwoPieceMax.apply(y, mean, torch.cat([slopes, intercepts], 2))
