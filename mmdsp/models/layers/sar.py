"""Shuffle Attention of Residual (SAR), paper section 3.2, eqs. 3-7."""
import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from mmpretrain.models.utils import channel_shuffle

from ...utils.checks import check_int, check_maps

from . import _sar_device, _sar_kernels
from ._impl import kernels_for


def sar_reference(x, conv_h, conv_w, norm, groups, shuffle_groups=2,
                  residual=True):
    """SAR as the paper writes it (eqs. 3-7), the forward to check it by.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        conv_h (nn.Module): ``F_h``, a 1-D conv over the C / groups channels
            of one group.
        conv_w (nn.Module): ``F_w``, the same for the W-strips.
        norm (nn.Module): ``G_n``, shared by both strips.
        groups (int): Channel groups; each one shares ``F_h``, ``F_w`` and
            ``G_n``.
        shuffle_groups (int): Groups of the channel shuffle; 1 skips it.
            Defaults to 2.
        residual (bool): Whether to add ``x``. Defaults to True.

    Returns:
        Tensor: ``x + shuffle(x * y^h * y^w)``, the shape of ``x``.
    """
    n, c, h, w = x.shape
    # Folding the groups into the batch makes them share F_h, F_w and G_n.
    xg = x.reshape(n * groups, c // groups, h, w)
    z_h = xg.mean(dim=3)  # eq. 3: pool along W, (N * groups, C / groups, H)
    z_w = xg.mean(dim=2)  # eq. 4: pool along H, (N * groups, C / groups, W)
    y_h = torch.sigmoid(norm(conv_h(z_h)))  # eq. 5
    y_w = torch.sigmoid(norm(conv_w(z_w)))  # eq. 6
    y = xg * y_h.unsqueeze(3) * y_w.unsqueeze(2)  # eq. 7
    y = y.reshape(n, c, h, w)  # concatenate the groups
    if shuffle_groups > 1:
        y = channel_shuffle(y, shuffle_groups)
    return x + y if residual else y


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

    The forward is :func:`sar_reference`, or with
    ``mmdsp.models.layers.set_impl('fast')`` (the default) the same math
    tuned for CPU tensors in ``_sar_kernels.py`` and, for CUDA and other
    devices, in ``_sar_device.py``.

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
            check_int('SAR', name, value)
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
        check_maps('SAR', x, self.in_channels, batch='N')
        kernels = kernels_for(x)
        if kernels == 'reference':
            return sar_reference(x, self.conv_h, self.conv_w, self.norm,
                                 self.groups, self.shuffle_groups,
                                 self.residual)
        if kernels == 'traced':
            # torch.compile / torch.export see plain ops they can fuse.
            return _sar_kernels.sar_traceable(self, x)
        if kernels == 'cpu':
            return _sar_kernels.sar_forward(self, x)
        return _sar_device.sar_device(self, x)

    def extra_repr(self):
        return (f'in_channels={self.in_channels}, groups={self.groups}, '
                f'shuffle_groups={self.shuffle_groups}, '
                f'residual={self.residual}')
