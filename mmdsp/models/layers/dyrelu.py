"""Dynamic ReLU, variant B (Chen et al., ECCV 2020), paper ref. [17]."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn

from ...utils.checks import check_int, check_maps
from . import _dyrelu_device, _dyrelu_kernels
from ._impl import kernels_for


def max_of_pieces(x, coef):
    """The activation of DY-ReLU-B as its paper writes it:
    ``y_c = max_j (a_c^j x_c + b_c^j)``, the forward to check it by.

    Args:
        x (Tensor): Input of shape (B, C, H, W).
        coef (Tensor): Per-sample, per-channel coefficients, shape
            (B, C, 2k): the slopes ``a^1..a^k``, then the intercepts
            ``b^1..b^k`` (:meth:`DyReLU.coefficients`).

    Returns:
        Tensor: Output of the shape of ``x``.
    """
    k = coef.size(2) // 2
    a = coef[:, :, :k, None, None]  # (B, C, k, 1, 1)
    b = coef[:, :, k:, None, None]
    pieces = a * x.unsqueeze(2) + b  # (B, C, k, H, W)
    return pieces.max(dim=2).values


@MODELS.register_module()
class DyReLU(BaseModule):
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

    The activation is :func:`max_of_pieces`, or with
    ``mmdsp.models.layers.set_impl('fast')`` (the default) the same math
    tuned for CPU tensors in ``_dyrelu_kernels.py`` and, for CUDA and other
    devices, in ``_dyrelu_device.py``.

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
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 reduction: int = 4,
                 k: int = 2,
                 lambdas: Sequence[float] = (1.0, 0.5),
                 init_a: Optional[Sequence[float]] = None,
                 init_b: Optional[Sequence[float]] = None,
                 inplace: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        for name, value in (('channels', channels), ('reduction', reduction),
                            ('k', k)):
            check_int('DyReLU', name, value)
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
        check_maps('DyReLU', x, self.channels)
        coef = self.coefficients(x)
        kernels = kernels_for(x)
        if kernels == 'reference':
            return max_of_pieces(x, coef)
        if kernels == 'cpu':
            return _dyrelu_kernels.max_of_pieces(x, coef)
        if kernels == 'device' and self.k == 2:
            return _dyrelu_device.two_piece_max(x, coef)
        # torch.compile / torch.export: plain ops inductor can fuse.
        return _dyrelu_kernels.running_max(x, coef)

    def extra_repr(self) -> str:
        return f'{self.channels}, k={self.k}'
