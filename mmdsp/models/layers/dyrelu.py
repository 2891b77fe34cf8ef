"""Dynamic ReLU, variant B (Chen et al., ECCV 2020), paper ref. [17]."""
from typing import Optional, Sequence

import torch
from mmengine.registry import MODELS
from torch import nn
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


@MODELS.register_module()
class DyReLU(nn.Module):
    """Dynamic ReLU with channel-wise coefficients (DY-ReLU-B).

    A hyper function computes, per sample, ``2 * k`` coefficients for every
    channel from the globally pooled input (FC -> ReLU -> FC -> normalisation
    ``2 * sigmoid(z) - 1`` in [-1, 1]), and the activation is the maximum of
    ``k`` affine pieces:

    .. math::

        y_c = \\max_{1 \\le j \\le k} (a_c^j(x) x_c + b_c^j(x)), \\quad
        a_c^j = \\alpha^j + \\lambda_a \\Delta a_c^j, \\quad
        b_c^j = \\beta^j + \\lambda_b \\Delta b_c^j

    with the initial values of Chen et al.: ``alpha^1 = 1``, every other
    ``alpha^j`` and ``beta^j`` zero, so a zero residual is a plain ReLU
    (``k = 2``).

    Args:
        channels (int): Number of channels of the input.
        reduction (int): Channel reduction of the hidden FC. Defaults to 4.
        k (int): Number of linear pieces. Defaults to 2.
        lambdas (Sequence[float]): Scales ``(lambda_a, lambda_b)`` of the
            residual slope and intercept. Defaults to (1.0, 0.5).
        init_a (Sequence[float], optional): Base slopes ``alpha^1..alpha^k``.
            Defaults to ``(1, 0, ..., 0)``.
        init_b (Sequence[float], optional): Base intercepts
            ``beta^1..beta^k``. Defaults to zeros.
        inplace (bool): Accepted because :class:`mmcv.cnn.ConvModule` passes
            it to every activation; the result is always a new tensor, since
            ``x`` is needed by all ``k`` pieces. Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 reduction: int = 4,
                 k: int = 2,
                 lambdas: Sequence[float] = (1.0, 0.5),
                 init_a: Optional[Sequence[float]] = None,
                 init_b: Optional[Sequence[float]] = None,
                 inplace: bool = False):
        super().__init__()
        if channels < 1 or reduction < 1 or k < 1:
            raise ValueError('DyReLU: channels, reduction and k must be >= 1, '
                             f'got {channels}, {reduction}, {k}')
        if init_a is None:
            init_a = (1.0, ) + (0.0, ) * (k - 1)
        if init_b is None:
            init_b = (0.0, ) * k
        if len(lambdas) != 2 or len(init_a) != k or len(init_b) != k:
            raise ValueError(
                f'DyReLU: lambdas needs 2 values and init_a / init_b k={k} '
                f'values, got {len(lambdas)}, {len(init_a)}, {len(init_b)}')
        self.channels = channels
        self.k = k
        self.inplace = inplace
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, 2 * k * channels)
        # Ordered [a^1..a^k, b^1..b^k] to match the FC output layout below.
        self.register_buffer(
            'lambdas',
            torch.tensor([lambdas[0]] * k + [lambdas[1]] * k),
            persistent=False)
        self.register_buffer(
            'init_v',
            torch.tensor(list(init_a) + list(init_b), dtype=torch.float),
            persistent=False)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-channel slopes and intercepts.

        Args:
            x (Tensor): Input of shape (B, channels, H, W).

        Returns:
            Tensor: Shape (B, channels, 2k): ``[..., :k]`` are the slopes
            ``a^1..a^k``, ``[..., k:]`` the intercepts ``b^1..b^k``.
        """
        theta = self.fc2(self.relu(self.fc1(x.mean(dim=(2, 3)))))
        theta = 2 * torch.sigmoid(theta) - 1
        theta = theta.view(-1, self.channels, 2 * self.k)
        return self.init_v + self.lambdas * theta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the activation.

        Args:
            x (Tensor): Input of shape (B, channels, H, W).

        Returns:
            Tensor: Output of the same shape.
        """
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f'DyReLU expects input (B, {self.channels}, H, W), got '
                f'{tuple(x.shape)}')
        coef = self.coefficients(x)
        if self.k == 2:
            if torch.is_grad_enabled() and (x.requires_grad
                                            or coef.requires_grad):
                return _TwoPieceMax.apply(x, coef)
            # Inference: the two pieces and their maximum, in place.
            a0, a1, b0, b1 = (coef[:, :, i, None, None] for i in range(4))
            out = torch.addcmul(b0, a0, x)
            return torch.maximum(out, torch.addcmul(b1, a1, x), out=out)
        coef = coef[..., None, None]  # (B, C, 2k, 1, 1)
        a, b = coef[:, :, :self.k], coef[:, :, self.k:]
        # max(m, p) = m + relu(p - m): a running maximum whose backward is a
        # cheap threshold instead of torch.maximum's masked selects (about
        # 2x faster on CPU). The first difference is taken on the small
        # coefficients rather than on full feature maps.
        out = torch.addcmul(b[:, :, 0], a[:, :, 0], x)
        for j in range(1, self.k):
            if j == 1:
                diff = torch.addcmul(b[:, :, 1] - b[:, :, 0],
                                     a[:, :, 1] - a[:, :, 0], x)
            else:
                diff = torch.addcmul(b[:, :, j], a[:, :, j], x) - out
            out = out + torch.relu(diff)
        return out

    def extra_repr(self) -> str:
        return f'{self.channels}, k={self.k}'
