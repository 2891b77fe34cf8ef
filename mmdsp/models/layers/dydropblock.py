"""DyDropBlock, paper section 3.3, eqs. 8-9."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ...utils.checks import check_int, check_probability
from . import _dydropblock_kernels
from ._impl import kernels_for


def depth_schedule(start, final, depth):
    """Per-layer drop probabilities that grow linearly with depth (eq. 8).

    ``p_n = start + (final - start) * n / depth`` for ``n = 1 .. depth``, so
    the last layer gets ``final`` and the increments are equal.

    The paper prints eq. 8 as ``p = (p_f - p_s) / depth * n``, which drops
    ``p_s`` and would never reach ``p_f`` unless ``p_s == 0``. We read ``p_s``
    as the starting offset; ``start=0`` reproduces the printed formula
    exactly.

    Args:
        start (float): ``p_s``, the initial drop probability (the value at
            ``n = 0``, just before the first layer).
        final (float): ``p_f``, the drop probability of the deepest layer.
        depth (int): Number of layers, ``depth`` in eq. 8.

    Returns:
        list[float]: ``depth`` drop probabilities, shallowest first.
    """
    check_int('depth_schedule', 'depth', depth)
    check_probability('depth_schedule', 'start', start)
    check_probability('depth_schedule', 'final', final)
    return [start + (final - start) * n / depth for n in range(1, depth + 1)]


def drop_blocks(x, seeds, beta, eps=1e-6):
    """DropBlock's mask and rescaling as written, the forward to check
    :class:`DyDropBlock` by: every seed zeroes the ``beta x beta`` block it
    anchors (a stride-1 max-pool of the seeds padded by ``beta - 1``), and
    the kept units are multiplied by ``numel / kept``.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        seeds (Tensor): 0/1 Bernoulli(alpha) seeds (eq. 9) on the positions
            where a whole block fits, shape (N, C, H - beta + 1,
            W - beta + 1), in the dtype of ``x``.
        beta (int): Block size.
        eps (float): Floor of the kept-unit count, so a fully dropped map
            gives zeros, not NaNs. Defaults to 1e-6.

    Returns:
        Tensor: The masked, rescaled input.
    """
    pad = beta - 1
    dropped = F.max_pool2d(
        F.pad(seeds, (pad, pad, pad, pad)), kernel_size=beta, stride=1)
    keep = 1 - dropped
    # Counted in float32: a half-precision sum stops counting at 2048.
    kept = keep.sum(dtype=torch.float32).clamp_min(eps)
    return x * keep * (keep.numel() / kept).to(x.dtype)


@MODELS.register_module()
class DyDropBlock(BaseModule):
    """DropBlock (Ghiasi et al. 2018) with a depth- and time-dependent rate.

    In training, seeds are drawn with the Bernoulli rate of eq. 9,
    ``alpha = p * (w * h) / (beta^2 * (w - beta + 1) * (h - beta + 1))``,
    only where a whole ``beta x beta`` block fits; every seed zeroes its
    block, and the kept units are rescaled by ``numel / kept`` so the
    expected activation is unchanged. Each channel of each sample gets its
    own mask. In eval mode, or when the effective probability is 0, the
    module is the identity. The mask is :func:`drop_blocks`, or with
    ``mmdsp.models.layers.set_impl('fast')`` (the default) the same mask
    from the same seeds, built faster (``_dydropblock_kernels.py``).

    The depth dependence of eq. 8 is chosen when building: give the blocks
    the values of :func:`depth_schedule`. The time dependence is ``scale``,
    a factor in [0, 1] on ``drop_prob`` that
    :class:`~mmdsp.engine.hooks.DropBlockWarmupHook` ramps from 0 to 1 over
    training, the schedule of the DropBlock paper.

    Args:
        drop_prob (float): Target fraction ``p`` of dropped units, in
            [0, 1). Defaults to 0.1.
        block_size (int): Block side ``beta``; clipped to the feature map's
            smaller side at run time. Defaults to 7.
        scale (float): Initial warm-up factor on ``drop_prob``. Defaults to
            1.0, i.e. no warm-up unless a hook lowers it.
        eps (float): Floor of the kept-unit count in the rescaling, so a map
            that happens to be fully dropped gives zeros, not NaNs.
            Defaults to 1e-6.
        init_cfg (dict | list[dict], optional): Initialization config; the
            module has no parameters. Defaults to None.
    """

    def __init__(self,
                 drop_prob=0.1,
                 block_size=7,
                 scale=1.0,
                 eps=1e-6,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.drop_prob = check_probability('DyDropBlock', 'drop_prob',
                                           drop_prob)
        self.block_size = check_int('DyDropBlock', 'block_size', block_size)
        self.scale = scale
        self.eps = eps

    @property
    def scale(self):
        return self._scale

    @scale.setter
    def scale(self, value):
        self._scale = check_probability(
            'DyDropBlock', 'scale', value, include_one=True)

    @property
    def effective_drop_prob(self):
        """float: ``drop_prob * scale``, the ``p`` used by eq. 9 now."""
        return self.drop_prob * self.scale

    def gamma(self, height, width):
        """Seed rate ``alpha`` of eq. 9 for a ``height x width`` map.

        Args:
            height (int): Feature map height ``h``.
            width (int): Feature map width ``w``.

        Returns:
            tuple[float, int]: ``alpha`` and the clipped block size ``beta``.
        """
        beta = min(self.block_size, height, width)
        valid = (width - beta + 1) * (height - beta + 1)
        alpha = self.effective_drop_prob * (width * height) / (
            beta**2 * valid)
        return alpha, beta

    def forward(self, x):
        p = self.effective_drop_prob
        if not self.training or p == 0:
            return x
        if x.dim() != 4:
            raise ValueError(f'DyDropBlock expects (N, C, H, W) input, got '
                             f'{tuple(x.shape)}')
        n, c, h, w = x.shape
        alpha, beta = self.gamma(h, w)
        # Seeds live on the top-left corners where a whole block fits.
        seeds = torch.bernoulli(
            torch.full((n, c, h - beta + 1, w - beta + 1),
                       min(alpha, 1.0),
                       device=x.device,
                       dtype=x.dtype))
        kernels = kernels_for(x)
        if kernels == 'reference':
            return drop_blocks(x, seeds, beta, self.eps)
        if kernels == 'device':
            return _dydropblock_kernels.drop_blocks_lean(
                x, seeds, beta, self.eps)
        return _dydropblock_kernels.drop_blocks(x, seeds, beta, self.eps)

    # The tuned mask, public before the kernels moved to their own module.
    spread_seeds = staticmethod(_dydropblock_kernels.spread_seeds)

    def extra_repr(self):
        return (f'drop_prob={self.drop_prob}, block_size={self.block_size}, '
                f'scale={self.scale}')
