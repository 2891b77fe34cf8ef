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
        # Under autocast the coefficients are float32 and x fp16 / bf16:
        # they are cast to x's dtype, so the output and the saved tensors
        # stay in low precision; autograd casts each gradient back to its
        # input's dtype.
        coef = coef.to(x.dtype)
        a0, a1, b0, b1 = (coef[:, :, i, None, None] for i in range(4))
        out, second = piece(x, a0, b0), piece(x, a1, b1)
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
        return two_piece_max_(piece(x, a0, b0), x, a1, b1)
    return running_max(x, coef)


def piece(x, a, b):
    """``a * x + b`` for per-(sample, channel) ``a``, ``b`` of shape
    (B, C, 1, 1): a multiply and an in-place add. On CPU ``addcmul`` with
    two broadcast operands is 2-3x slower than these two vectorised passes
    (and with ``b`` as its first operand it page-faults its output on every
    call)."""
    return torch.mul(x, a).add_(b)


# Temporaries above this size are made per sample: glibc hands out blocks
# over 32 MiB with mmap, so every such tensor costs a page fault per 4 KiB
# (as long as computing it, e.g. 192x56x56 maps at batch 16).
CHUNK_BYTES = 8 << 20


def two_piece_max_(out, x, a1, b1):
    """``out = max(out, a1 * x + b1)`` in place, without a full-size
    temporary when ``x`` is large (one sample at a time, on CPU).

    Args:
        out (Tensor): The first piece, (B, C, H, W); overwritten.
        x (Tensor): The input, (B, C, H, W).
        a1, b1 (Tensor): Slope and intercept of the second piece, each
            (B, C, 1, 1).

    Returns:
        Tensor: ``out``.
    """
    if x.device.type == 'cpu' and x.size(0) > 1 \
            and x.numel() * x.element_size() > CHUNK_BYTES:
        for i in range(x.size(0)):
            torch.maximum(out[i], piece(x[i], a1[i], b1[i]), out=out[i])
        return out
    return torch.maximum(out, piece(x, a1, b1), out=out)


def bn_dyrelu_eval(bn, dyrelu, y):
    """``dyrelu(bn(y))`` for an eval-mode BatchNorm with running statistics
    and a two-piece DyReLU, without the normalised map: BN is the
    per-channel affine ``s * y + t``, so its mean is ``s * mean(y) + t``
    (DyReLU's coefficients) and the pieces ``a_j (s y + t) + b_j`` are
    affine in ``y``. Saves one full-size pass and tensor of the Dy-ODConv
    unit's inference.

    Args:
        bn (nn.BatchNorm2d): In eval mode, with running statistics.
        dyrelu (DyReLU): With ``k == 2``.
        y (Tensor): The conv output, (B, C, H, W).

    Returns:
        Tensor: The output of the norm and the activation.
    """
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    pooled = torch.addcmul(shift, y.mean(dim=(2, 3)), scale)  # mean(bn(y))
    coef = coefficients(dyrelu, pooled)  # (B, C, 4)
    slope = coef[:, :, :2] * scale[:, None]
    intercept = torch.addcmul(coef[:, :, 2:], coef[:, :, :2], shift[:, None])
    a0, a1 = slope[:, :, 0, None, None], slope[:, :, 1, None, None]
    b0, b1 = intercept[:, :, 0, None, None], intercept[:, :, 1, None, None]
    return two_piece_max_(piece(y, a0, b0), y, a1, b1)


def coefficients(dyrelu, pooled):
    """:meth:`DyReLU.coefficients` from the pooled input (B, C)."""
    theta = dyrelu.fc2(dyrelu.relu(dyrelu.fc1(pooled)))
    theta = 2 * torch.sigmoid(theta) - 1
    theta = theta.view(-1, dyrelu.channels, 2 * dyrelu.k)
    return dyrelu.init_v + dyrelu.lambdas * theta


def running_max(x, coef):
    """``max_j (a^j x + b^j)`` as a running ``m + relu(p - m)`` in plain
    differentiable ops, for any k; ties go to the first piece, as in
    :class:`_TwoPieceMax`. Also the path under ``torch.compile`` /
    ``torch.export``, where inductor fuses the pieces into one loop.
    Arguments and result as for :func:`max_of_pieces`.
    """
    k = coef.size(2) // 2
    coef = coef[..., None, None]  # (B, C, 2k, 1, 1)
    a, b = coef[:, :, :k], coef[:, :, k:]
    # max(m, p) = m + relu(p - m): a running maximum whose backward is a
    # cheap threshold instead of torch.maximum's masked selects (about 2x
    # faster on CPU). The first difference is taken on the small
    # coefficients rather than on full feature maps.
    out = torch.addcmul(b[:, :, 0], x, a[:, :, 0])
    for j in range(1, k):
        if j == 1:
            diff = torch.addcmul(b[:, :, 1] - b[:, :, 0], x,
                                 a[:, :, 1] - a[:, :, 0])
        else:
            diff = torch.addcmul(b[:, :, j], x, a[:, :, j]) - out
        out = out + torch.relu(diff)
    return out
