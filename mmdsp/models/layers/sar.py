"""Shuffle Attention of Residual (SAR), paper section 3.2, eqs. 3-7."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from mmpretrain.models.utils import channel_shuffle
from torch.autograd.function import once_differentiable


class _ShuffledGate(torch.autograd.Function):
    """``out = [x +] shuffle(x * y^h * y^w)`` (eq. 7, shuffle, residual)
    with the gates already in output channel order.

    Autograd through the strided views of this expression copies the
    gradient back to x's layout and multiplies over 7- or 14-long inner
    axes; this backward needs one product and one strided sum for x, and
    for the gates one product with x plus the two strip reductions, done as
    matmuls with the 0/1 expansion matrices on small maps.
    """

    @staticmethod
    def forward(ctx, x, y_h, y_w, shuffle_groups, residual, expand_h,
                expand_w):
        # Under autocast the gates (sigmoid) are fp32 and x fp16/bf16: one
        # dtype for all, so the matmuls of the backward agree. Autograd casts
        # each gradient back to its input's dtype.
        dtype = torch.promote_types(x.dtype, y_h.dtype)
        x, y_h, y_w = x.to(dtype), y_h.to(dtype), y_w.to(dtype)
        if expand_h is not None:
            expand_h, expand_w = expand_h.to(dtype), expand_w.to(dtype)
        n, c, h, w = x.shape
        s = shuffle_groups
        if expand_h is not None:
            gate = (y_h.reshape(n * c, h) @ expand_h) * (
                y_w.reshape(n * c, w) @ expand_w)
        else:
            gate = y_h.unsqueeze(3) * y_w.unsqueeze(2)
        gate = gate.view(n, c // s, s, h, w)
        # x in output channel order, as a strided view (no copy).
        x_in = x.view(n, s, c // s, h, w).transpose(1, 2)
        if residual:
            out = torch.addcmul(x.view(n, c // s, s, h, w), x_in, gate)
        else:
            out = gate * x_in
        ctx.shuffle_groups, ctx.residual = s, residual
        ctx.save_for_backward(x, y_h, y_w, gate, expand_h, expand_w)
        return out.reshape(n, c, h, w)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, y_h, y_w, gate, expand_h, expand_w = ctx.saved_tensors
        n, c, h, w = x.shape
        s = ctx.shuffle_groups
        grad5 = grad.contiguous().view(n, c // s, s, h, w)
        grad_x = grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            # Back to x's channel order by a strided read, no copy.
            unshuffled = (grad5 * gate).transpose(1, 2)
            if ctx.residual:
                grad_x = torch.add(grad5.view(n, s, c // s, h, w),
                                   unshuffled).view(n, c, h, w)
            else:
                grad_x = unshuffled.reshape(n, c, h, w)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_gate = grad5 * x.view(n, s, c // s, h, w).transpose(1, 2)
            if expand_h is not None:
                grad_gate = grad_gate.reshape(n * c, h * w)
                grad_h = (grad_gate * (y_w.reshape(n * c, w) @ expand_w)) \
                    @ expand_h.t()
                grad_w = (grad_gate * (y_h.reshape(n * c, h) @ expand_h)) \
                    @ expand_w.t()
            else:
                grad_gate = grad_gate.reshape(n, c, h, w)
                grad_h = (grad_gate * y_w.unsqueeze(2)).sum(3)
                grad_w = (grad_gate * y_h.unsqueeze(3)).sum(2)
            grad_h, grad_w = grad_h.view_as(y_h), grad_w.view_as(y_w)
        return grad_x, grad_h, grad_w, None, None, None, None


@MODELS.register_module()
class SAR(BaseModule):
    """Shuffle Attention of Residual.

    The channels are split into ``groups`` groups. Each group is pooled
    along W into an H-strip (eq. 3) and along H into a W-strip (eq. 4); a
    depthwise 1-D convolution, GroupNorm and a sigmoid turn each strip into
    the positional weights ``y^h`` and ``y^w`` (eqs. 5, 6), and the group is
    re-weighted as ``y = x * y^h * y^w`` (eq. 7). The groups are
    concatenated, channel-shuffled and added to the input.

    Where the paper is silent:

    - ``F_h``, ``F_w`` (eqs. 5, 6) are two separate depthwise ``Conv1d``
      layers over the ``in_channels // groups`` channels of one group. Their
      weights, like the GroupNorm affine parameters, are shared by all
      groups, as SA-Net shares its per-group parameters, so the parameter
      count does not grow with ``groups``.
    - One GroupNorm ``G_n`` serves both strips, as in eqs. 5 and 6. Its
      default normalises every channel of a group on its own strip
      (``num_groups == in_channels // groups``), as SA-Net's GroupNorm does.
    - The shuffle uses ``shuffle_groups`` (default 2, SA-Net's choice). A
      shuffle by ``groups`` would be the identity whenever each group holds a
      single channel (e.g. 64 channels in 64 groups).

    Args:
        in_channels (int): Channels of the input (and the output).
        groups (int): Number of channel groups; must divide
            ``in_channels``. Defaults to 64, which divides the widths 256,
            512, 768, 960 and 1536 used by EfficientNet-DSP.
        kernel_size (int): Kernel size of the 1-D convolutions ``F_h`` and
            ``F_w``; must be odd so the padding keeps the strip length.
            Defaults to 7.
        shuffle_groups (int): Groups of the channel shuffle after
            concatenation; 1 disables the shuffle. Defaults to 2.
        residual (bool): Whether to add the input to the shuffled output.
            Defaults to True.
        norm_cfg (dict, optional): Norm layer config for ``G_n``. Defaults
            to None, meaning
            ``dict(type='GN', num_groups=in_channels // groups)``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """

    # Maps of at most this many pixels expand the strip gates by matmul.
    SMALL_MAP = 64

    def __init__(self,
                 in_channels,
                 groups=64,
                 kernel_size=7,
                 shuffle_groups=2,
                 residual=True,
                 norm_cfg=None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels), ('groups', groups),
                            ('kernel_size', kernel_size),
                            ('shuffle_groups', shuffle_groups)):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(
                    f'SAR: {name} must be a positive int, got {value!r}')
        if in_channels % groups != 0:
            raise ValueError(
                f'SAR: groups={groups} must divide in_channels={in_channels}'
                f' (in_channels % groups = {in_channels % groups})')
        if kernel_size % 2 == 0:
            raise ValueError(
                f'SAR: kernel_size={kernel_size} must be odd so that the '
                '1-D convolution keeps the strip length')
        if in_channels % shuffle_groups != 0:
            raise ValueError(
                f'SAR: shuffle_groups={shuffle_groups} must divide '
                f'in_channels={in_channels}')
        self.in_channels = in_channels
        self.groups = groups
        self.kernel_size = kernel_size
        self.shuffle_groups = shuffle_groups
        self.residual = residual

        group_channels = in_channels // groups
        self.group_channels = group_channels
        conv_kwargs = dict(
            in_channels=group_channels,
            out_channels=group_channels,
            kernel_size=kernel_size,
            padding=kernel_size // 2,
            groups=group_channels,
            bias=False)
        self.conv_h = nn.Conv1d(**conv_kwargs)
        self.conv_w = nn.Conv1d(**conv_kwargs)
        if norm_cfg is None:
            norm_cfg = dict(type='GN', num_groups=group_channels)
        _, self.norm = build_norm_layer(norm_cfg, group_channels)

    def forward(self, x):
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(
                f'SAR expects (N, {self.in_channels}, H, W) input, got '
                f'{tuple(x.shape)}')
        # The views below need NCHW-contiguous memory (a no-op unless x is
        # e.g. channels_last).
        x = x.contiguous()
        n, c, h, w = x.shape
        z_h = x.mean(dim=3)  # eq. 3: (N, C, H)
        z_w = x.mean(dim=2)  # eq. 4: (N, C, W)
        # The gates come back channel-shuffled: shuffling them rather than
        # the output saves a full-size copy. Output channel j * s + i is
        # input channel i * C / s + j, gated. F.batch_norm refuses one value
        # per channel, so 1-pixel strips (whose gate is sigmoid(bias)) take
        # the reference path.
        if self._per_channel_norm() and h > 1 and w > 1:
            y_h, y_w = self._strip_gates(z_h, z_w)  # eqs. 5, 6
        else:
            y_h, y_w = self._strip_gates_reference(z_h, z_w)
        # Eq. 7, the shuffle and the residual in two full-size passes (see
        # _ShuffledGate). On small maps (7x7 in the last stage) broadcasting
        # over a 7-long inner axis is dominated by per-row overhead on CPU
        # and y^h * y^w is built from two expansion matmuls with constant
        # 0/1 matrices instead (exact: one non-zero term each); on 14x14
        # maps those matmuls cost more than they save.
        expand_h = expand_w = None
        if h * w <= self.SMALL_MAP:
            expand_h, expand_w = self._pixel_maps(h, w, x)
        return _ShuffledGate.apply(x, y_h, y_w, self.shuffle_groups,
                                   self.residual, expand_h, expand_w)

    def _pixel_maps(self, h, w, x):
        """Constant 0/1 matrices ``expand_h`` (H, H*W) and ``expand_w``
        (W, H*W) that copy a strip value to every pixel of its row / column,
        cached per size, device and dtype (not state: no state_dict keys)."""
        key = (h, w, x.device, x.dtype)
        cache = self.__dict__.setdefault('_pixel_map_cache', {})
        if key not in cache:
            pixels = torch.arange(h * w, device=x.device)
            expand_h = pixels[None] // w == torch.arange(
                h, device=x.device)[:, None]
            expand_w = pixels[None] % w == torch.arange(
                w, device=x.device)[:, None]
            cache[key] = (expand_h.to(x.dtype), expand_w.to(x.dtype))
        return cache[key]

    def _per_channel_norm(self):
        """Whether ``G_n`` normalises each channel over its strip, the
        default, for which :meth:`_strip_gates` is written."""
        norm, cg = self.norm, self.group_channels
        return (type(norm) is nn.GroupNorm
                and norm.num_groups == norm.num_channels == cg)

    def _strip_gates_reference(self, z_h, z_w):
        """Eqs. 5-6 with the modules as they are: the groups are folded into
        the batch so that every group shares ``F_h``, ``F_w`` and ``G_n``.
        Used for a norm other than the default per-channel GroupNorm and for
        strips of one pixel. Returns the gates channel-shuffled."""
        n, c, h = z_h.shape
        fold = (n * self.groups, self.group_channels)
        y_h = torch.sigmoid(self.norm(self.conv_h(z_h.reshape(*fold, h))))
        y_w = torch.sigmoid(
            self.norm(self.conv_w(z_w.reshape(*fold, z_w.size(2)))))
        gates = [y_h.reshape(n, c, h, 1), y_w.reshape(n, c, -1, 1)]
        if self.shuffle_groups > 1:
            gates = [channel_shuffle(y, self.shuffle_groups) for y in gates]
        return [y.flatten(2) for y in gates]

    def _strip_gates(self, z_h, z_w):
        """Eqs. 5-6, ``sigmoid(G_n(F(z)))`` on both strips, for the default
        per-channel GroupNorm; equal to :meth:`_strip_gates_reference`
        (channel-shuffled as well).

        The strips are tiny (N x C x 7 values at 7x7) and the depthwise
        ``Conv1d`` over ``N * groups`` samples of ``C / groups`` channels,
        and GroupNorm over groups of 7 values, are slow on CPU (the
        ``Conv1d`` weight gradient above all). Instead:

        - ``F_h`` / ``F_w`` are a batched matmul with the banded (Toeplitz)
          matrix of each in-group channel's kernel, zero padding included;
        - the strips are laid out as (L, strips) so that normalising every
          strip over its L positions is ``F.batch_norm`` in training mode
          with no running statistics (biased variance, the same ``eps``),
          a vectorised kernel, followed by the GroupNorm affine;
        - for square maps both strips go through one matmul, one norm and
          one sigmoid;
        - the copy back to (N, C, L) also applies the channel shuffle.
        """
        n, c, h = z_h.shape
        w = z_w.size(2)
        groups, cg, s = self.groups, self.group_channels, self.shuffle_groups
        strips = [(z_h, self.conv_h), (z_w, self.conv_w)]
        batches = [strips] if h == w else [strips[:1], strips[1:]]
        norm = self.norm
        gates = []
        for batch in batches:
            k, length = len(batch), batch[0][0].size(2)
            # (k, N, C, L) -> (k * C/G, L, N * G): one matrix per in-group
            # channel, applied to all groups and samples at once.
            z = torch.stack([strip for strip, _ in batch])
            z = z.view(k, n * groups, cg, length).permute(0, 2, 3, 1).reshape(
                k * cg, length, n * groups)
            band = self._band([conv for _, conv in batch], length)
            # Strips as columns, ordered (sample, group, k, in-group channel)
            # so that the per-channel affine broadcasts over the last axis.
            u = torch.matmul(band, z).permute(1, 2, 0).reshape(length, -1)
            u = F.batch_norm(u, None, None, None, None, True, 0.0, norm.eps)
            if norm.affine:
                u = torch.addcmul(norm.bias, u.view(length, -1, cg),
                                  norm.weight)
            y = torch.sigmoid(u)
            if s > 1 and groups % s == 0:
                # Input channel (i * G/s + g) * C/G + c goes to output
                # channel (g * C/G + c) * s + i.
                y = y.view(length, n, s, groups // s, k, cg).permute(
                    4, 1, 3, 5, 2, 0)
                gates.extend(y.reshape(k, n, c, length).unbind(0))
                continue
            y = y.view(length, n, groups, k, cg).permute(3, 1, 2, 4, 0)
            y = y.reshape(k, n, c, length, 1)
            if s > 1:
                y = torch.stack([channel_shuffle(g, s) for g in y.unbind(0)])
            gates.extend(y.flatten(3).unbind(0))
        return gates

    def _band(self, convs, length):
        """The Toeplitz matrices of ``convs`` for strips of ``length``,
        stacked: (len(convs) * C/G, L, L)."""
        k = self.kernel_size
        key = (length, k, convs[0].weight.device)
        cache = self.__dict__.setdefault('_tap_cache', {})
        if key not in cache:
            cache[key] = self._taps(length, k, convs[0].weight.device)
        tap, inside = cache[key]
        weight = torch.cat([conv.weight for conv in convs])
        return weight[:, 0, tap] * inside

    @staticmethod
    def _taps(length, kernel_size, device=None):
        """Which kernel tap links strip positions i and j of a 'same'
        padded 1-D convolution: ``tap[j, i] = i - j + k // 2`` (clipped)
        and ``inside[j, i]`` whether that tap exists (else zero padding)."""
        pos = torch.arange(length, device=device)
        tap = pos[None, :] - pos[:, None] + kernel_size // 2
        inside = (tap >= 0) & (tap < kernel_size)
        return tap.clamp(0, kernel_size - 1), inside

    @classmethod
    def _toeplitz(cls, weight, length):
        """Banded matrices of a depthwise ``Conv1d`` with 'same' zero
        padding: ``T[c] @ z == conv1d(z)[c]`` for strips of ``length``.

        Args:
            weight (Tensor): Conv1d weight, shape (C, 1, k), k odd.
            length (int): Strip length L.

        Returns:
            Tensor: Shape (C, L, L), ``T[c, j, i] = weight[c, 0, i - j +
            k // 2]`` where that tap exists, else 0.
        """
        tap, inside = cls._taps(length, weight.size(2), weight.device)
        return weight[:, 0, tap] * inside

    def extra_repr(self):
        return (f'in_channels={self.in_channels}, groups={self.groups}, '
                f'shuffle_groups={self.shuffle_groups}, '
                f'residual={self.residual}')
