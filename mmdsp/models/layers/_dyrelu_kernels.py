"""CPU-tuned forward of :class:`~mmdsp.models.layers.DyReLU` (private).

The same math as :func:`~mmdsp.models.layers.dyrelu.max_of_pieces`, chosen by
``mmdsp.models.layers.set_impl('fast')`` (the default): the reference
broadcasts ``x`` against all ``k`` pieces into a (B, C, k, H, W) tensor and
reduces it; here the pieces are built one at a time on (B, C, H, W) maps.
"""
import torch
from torch.autograd.function import once_differentiable


class _TwoPieceMax(torch.autograd.Function):
    """``max(a0 x + b0, a1 x + b1)`` with per-(sample, channel) a, b.

    Autograd through two ``addcmul`` and a running maximum spends about ten
    full-size passes on the backward (each ``addcmul`` backward multiplies
    twice, scales and reduces); this backward keeps the input and a 0/1
    mask of where the second piece wins, and needs six. The mask is stored
    in the input's dtype because multiplying by a bool tensor (and
    ``torch.where``) is several times slower on CPU than a float multiply.
    Ties go to the first piece, as ``p0 + relu(p1 - p0)`` does.
    """

    @staticmethod
    def forward(ctx, x, coef):
        # Autocast may hand x and coef in different dtypes; autograd casts
        # each gradient back to its input's dtype.
        dtype = torch.promote_types(x.dtype, coef.dtype)
        x, coef = x.to(dtype), coef.to(dtype)
        a0, a1, b0, b1 = (coef[:, :, i, None, None] for i in range(4))
        out = torch.addcmul(b0, a0, x)
        second = torch.addcmul(b1, a1, x)
        mask = torch.gt(second, out, out=torch.empty_like(x))
        torch.maximum(out, second, out=out)
        ctx.save_for_backward(x, coef, mask)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, coef, mask = ctx.saved_tensors
        a0, a1 = coef[:, :, 0, None, None], coef[:, :, 1, None, None]
        grad_second = grad * mask
        grad_x = grad_coef = None
        if ctx.needs_input_grad[0]:
            # grad * (a0 + mask * (a1 - a0))
            grad_x = torch.addcmul(grad * a0, grad_second, a1 - a0)
        if ctx.needs_input_grad[1]:
            # The first piece's sums are the totals minus the second's.
            db_all, db1 = grad.sum((2, 3)), grad_second.sum((2, 3))
            da_all = (grad * x).sum((2, 3))
            da1 = (grad_second * x).sum((2, 3))
            grad_coef = torch.stack([da_all - da1, da1, db_all - db1, db1],
                                    dim=2)
        return grad_x, grad_coef


def max_of_pieces(x, coef):
    """``max_j (a^j x + b^j)`` for coefficients laid out as
    :meth:`DyReLU.coefficients` returns them.

    Args:
        x (Tensor): Input of shape (B, C, H, W).
        coef (Tensor): Shape (B, C, 2k): slopes, then intercepts.

    Returns:
        Tensor: Output of the shape of ``x``.
    """
    k = coef.size(2) // 2
    if k == 2:
        if torch.is_grad_enabled() and (x.requires_grad
                                        or coef.requires_grad):
            return _TwoPieceMax.apply(x, coef)
        # Inference: the two pieces and their maximum, in place.
        a0, a1, b0, b1 = (coef[:, :, i, None, None] for i in range(4))
        out = torch.addcmul(b0, a0, x)
        return torch.maximum(out, torch.addcmul(b1, a1, x), out=out)
    coef = coef[..., None, None]  # (B, C, 2k, 1, 1)
    a, b = coef[:, :, :k], coef[:, :, k:]
    # max(m, p) = m + relu(p - m): a running maximum whose backward is a
    # cheap threshold instead of torch.maximum's masked selects (about 2x
    # faster on CPU). The first difference is taken on the small
    # coefficients rather than on full feature maps.
    out = torch.addcmul(b[:, :, 0], a[:, :, 0], x)
    for j in range(1, k):
        if j == 1:
            diff = torch.addcmul(b[:, :, 1] - b[:, :, 0],
                                 a[:, :, 1] - a[:, :, 0], x)
        else:
            diff = torch.addcmul(b[:, :, j], a[:, :, j], x) - out
        out = out + torch.relu(diff)
    return out
