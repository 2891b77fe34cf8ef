"""Channel / spatial attention bricks compared with SAR in the paper (Table 3).

Every brick takes ``in_channels`` (the convention of
:func:`mmcv.cnn.build_plugin_layer`) and returns a tensor of the input's
shape.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from mmpretrain.models.utils import SELayer


@MODELS.register_module()
class SE(SELayer):
    """Squeeze-and-Excitation attention, the stock EfficientNetV2 brick.

    A thin alias of :class:`mmpretrain.models.utils.SELayer` that only renames
    ``channels`` to ``in_channels``, so its ``state_dict`` keys and its
    behaviour are exactly SELayer's and SE checkpoints stay interchangeable.

    Args:
        in_channels (int): Input (and output) channels.
        **kwargs: Passed to :class:`SELayer` unchanged: ``squeeze_channels``,
            ``ratio``, ``divisor``, ``bias``, ``conv_cfg``, ``act_cfg``,
            ``return_weight`` and ``init_cfg``.
    """

    def __init__(self, in_channels, **kwargs):
        if 'channels' in kwargs:
            raise TypeError(
                'SE takes in_channels, not channels; got channels='
                f'{kwargs["channels"]!r}')
        super().__init__(channels=in_channels, **kwargs)
        self.in_channels = in_channels


@MODELS.register_module()
class ECA(BaseModule):
    """Efficient Channel Attention (ECA-Net, Wang et al. 2020).

    Global average pooling followed by a 1-D convolution across channels
    (no dimensionality reduction) and a sigmoid gate.

    Args:
        in_channels (int): Input (and output) channels.
        kernel_size (int, optional): Kernel of the cross-channel 1-D
            convolution. Defaults to None, meaning ECA-Net's adaptive size:
            the odd number nearest above ``|log2(C) / gamma + b / gamma|``.
        gamma (float): Slope of the adaptive kernel-size mapping.
            Defaults to 2.
        b (float): Offset of the adaptive kernel-size mapping. Defaults to 1.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 kernel_size=None,
                 gamma=2,
                 b=1,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(
                f'ECA: in_channels must be a positive int, got '
                f'{in_channels!r}')
        if kernel_size is None:
            kernel_size = self.adaptive_kernel_size(in_channels, gamma, b)
        if not isinstance(kernel_size, int) or kernel_size < 1 \
                or kernel_size % 2 == 0:
            raise ValueError(
                f'ECA: kernel_size must be a positive odd int, got '
                f'{kernel_size!r}')
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(
            1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    @staticmethod
    def adaptive_kernel_size(channels, gamma=2, b=1):
        """ECA-Net's kernel size ``psi(C) = |log2(C)/gamma + b/gamma|_odd``.

        Args:
            channels (int): Number of channels ``C``.
            gamma (float): Slope. Defaults to 2.
            b (float): Offset. Defaults to 1.

        Returns:
            int: An odd kernel size (at least 1).
        """
        t = int(abs((math.log2(channels) + b) / gamma))
        return t if t % 2 else t + 1

    def forward(self, x):
        # (N, C, 1, 1) -> (N, 1, C): the channels become the 1-D sequence.
        y = F.adaptive_avg_pool2d(x, 1).flatten(1).unsqueeze(1)
        y = torch.sigmoid(self.conv(y))
        return x * y.transpose(1, 2).unsqueeze(-1)


@MODELS.register_module()
class CBAM(BaseModule):
    """Convolutional Block Attention Module (Woo et al. 2018).

    Channel attention (a shared two-layer MLP on the average- and max-pooled
    descriptors, summed, then a sigmoid) followed by spatial attention (a
    ``spatial_kernel`` convolution over the channel-wise mean and max maps,
    then a sigmoid), applied sequentially as in the CBAM paper.

    Args:
        in_channels (int): Input (and output) channels.
        ratio (int): Reduction ratio of the channel MLP; the hidden width is
            ``max(in_channels // ratio, 1)``. Defaults to 16.
        spatial_kernel (int): Odd kernel size of the spatial attention
            convolution. Defaults to 7.
        act_cfg (dict): Activation of the channel MLP.
            Defaults to ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 ratio=16,
                 spatial_kernel=7,
                 act_cfg=dict(type='ReLU'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(
                f'CBAM: in_channels must be a positive int, got '
                f'{in_channels!r}')
        if not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f'CBAM: ratio must be a positive int, got '
                             f'{ratio!r}')
        if not isinstance(spatial_kernel, int) or spatial_kernel % 2 == 0:
            raise ValueError(
                f'CBAM: spatial_kernel must be an odd int, got '
                f'{spatial_kernel!r}')
        self.in_channels = in_channels
        hidden = max(in_channels // ratio, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            build_activation_layer(act_cfg),
            nn.Conv2d(hidden, in_channels, 1, bias=False))
        self.spatial_conv = nn.Conv2d(
            2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)

    def forward(self, x):
        # amax, not adaptive_max_pool2d: the same maximum, and a backward
        # that CUDA allows under deterministic algorithms.
        channel_att = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(
            x.amax(dim=(2, 3), keepdim=True))
        x = x * torch.sigmoid(channel_att)
        pooled = torch.cat(
            [x.mean(dim=1, keepdim=True),
             x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial_conv(pooled))
