"""Omni-dimensional dynamic convolution (ODConv, Li et al., ICLR 2022).

EfficientNet-DSP (section 3.4, fig. 6) uses ODConv, through its ref. [16], as
the convolution of the Dy-ODConv unit. See ``docs/dynamic_conv.md`` for the
design decisions and where the paper is silent.
"""
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.utils import _pair

from ...utils.checks import check_int, check_maps
from . import _odconv_kernels
from ._impl import kernels_for


class ODConvAttention(NamedTuple):
    """The four per-sample attentions of ODConv2d.

    ``None`` marks an attention that is skipped because it would be a
    constant (see :class:`ODConv2d`).

    Args:
        channel (Tensor | None): Input-channel attention, (B, in_channels).
        filter (Tensor | None): Output-channel attention, (B, out_channels).
        spatial (Tensor | None): Spatial attention, (B, kh, kw).
        kernel (Tensor | None): Kernel-wise attention, (B, kernel_num); rows
            sum to one.
    """
    channel: Optional[torch.Tensor]
    filter: Optional[torch.Tensor]
    spatial: Optional[torch.Tensor]
    kernel: Optional[torch.Tensor]


class _CandidateKernels:
    """The candidate kernels of :class:`ODConv2d`, ``weight`` of shape
    ``(kernel_num, out_channels, in_channels // groups, kh, kw)``: their
    initialisation, their aggregation into per-sample kernels and the loading
    of a plain conv weight into each of them."""

    def init_weights(self) -> None:
        """Kaiming-normal init of each candidate kernel and of the FCs.

        Each candidate is initialised like a plain conv of its own shape
        (fan_out, ReLU gain), not the 5-D tensor as one kernel. Attention
        biases start at zero, so every sigmoid starts at 0.5 and the kernel
        attention uniform.
        """
        for i in range(self.kernel_num):
            nn.init.kaiming_normal_(
                self.weight.data[i], mode='fan_out', nonlinearity='relu')
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        for fc in (self.fc, self.channel_fc, self.filter_fc, self.spatial_fc,
                   self.kernel_fc):
            if fc is None:
                continue
            nn.init.kaiming_normal_(
                fc.weight, mode='fan_out', nonlinearity='relu')
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)

    def aggregate_weight(self, att: ODConvAttention) -> torch.Tensor:
        """Build the per-sample kernels from the candidates and attentions.

        Args:
            att (ODConvAttention): Output of :meth:`attentions`.

        Returns:
            Tensor: Kernels of shape (B, out_channels, in_channels // groups,
            kh, kw).
        """
        batch = att.channel.shape[0]
        out_c, in_per_group = self.out_channels, self.weight.shape[2]
        if att.kernel is None:
            weight = self.weight  # (1, out, in/g, kh, kw), broadcast over B
        else:
            weight = (att.kernel @ self.weight.flatten(1)).view(
                batch, *self.weight.shape[1:])
        # The channel attention lives on the input channels; inside the
        # kernel, output channel o of group g sees inputs g*in/g..(g+1)*in/g.
        scale = att.channel.view(batch, self.groups, 1, in_per_group).expand(
            -1, -1, out_c // self.groups,
            -1).reshape(batch, out_c, in_per_group, 1, 1)
        if att.filter is not None:
            scale = scale * att.filter.view(batch, out_c, 1, 1, 1)
        if att.spatial is not None:
            scale = scale * att.spatial.view(batch, 1, 1, *self.kernel_size)
        return weight * scale

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A plain conv checkpoint (e.g. an ImageNet EfficientNetV2 depthwise
        # conv) seeds every candidate: the softmax rows sum to one, so the
        # loaded module starts as that conv scaled by the sigmoid attentions.
        key = prefix + 'weight'
        weight = state_dict.get(key)
        if (weight is not None and weight.dim() == 4
                and weight.shape == self.weight.shape[1:]):
            state_dict[key] = weight.unsqueeze(0).expand_as(
                self.weight).clone()
        # Checkpoints without the temperature buffer (plain convs, ODConv2d
        # before it was saved) keep the current value.
        state_dict.setdefault(prefix + 'temperature', self.temperature)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)


@MODELS.register_module()
class ODConv2d(_CandidateKernels, BaseModule):
    """2D omni-dimensional dynamic convolution.

    A squeeze branch (global average pooling -> FC -> norm -> ReLU) predicts,
    for every sample, four attentions that are multiplied onto the
    ``kernel_num`` candidate kernels W_1..W_n in the order position, channel,
    filter, kernel (paper section 3.4):

    .. math::

        y = (\\alpha_{s} \\odot \\alpha_{c} \\odot \\alpha_{f} \\odot
        \\sum_i \\alpha_{w,i} W_i) * x

    where alpha_s (k x k, sigmoid), alpha_c (input channels, sigmoid) and
    alpha_f (output channels, sigmoid) are broadcast over the kernel and
    alpha_w is a softmax over the candidates, divided by ``temperature``. The
    per-sample kernels are applied with one grouped ``F.conv2d`` over the batch
    folded into channels.

    Attentions that would be constant are skipped, as in the reference
    implementation: the kernel attention when ``kernel_num == 1`` (a softmax
    over one entry), the spatial attention for 1x1 kernels (it would be one
    scalar per sample, already expressible by the filter attention) and the
    filter attention for depthwise convs (``groups == in_channels ==
    out_channels``: it would scale the same channel as the channel attention).
    With ``kernel_num == 1`` and 1x1 kernels ``use_factorized`` is set and,
    under ``mmdsp.models.layers.set_impl('fast')`` (the default), no
    per-sample kernel is built: the channel attention scales ``x`` and the
    filter attention scales ``y`` around a static convolution
    (``_odconv_kernels.py``).

    The attention branch must train with a batch of one sample, so it uses no
    BatchNorm: by default its hidden layer is LayerNorm-ed (per sample).

    The module exposes the attributes :class:`mmcv.cnn.ConvModule` reads, so it
    can be used as ``conv_cfg=dict(type='ODConv2d')``. ``weight`` holds the
    candidates, shape ``(kernel_num, out_channels, in_channels // groups, kh,
    kw)``; ConvModule leaves it alone because the module has ``init_weights``.
    A 4-D checkpoint weight of a plain conv with the same shape loads into
    every candidate (see :meth:`_load_from_state_dict`).

    Args:
        in_channels (int): Number of input channels.
        out_channels (int): Number of output channels.
        kernel_size (int | tuple[int, int]): Size of the kernel.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int]): Zero padding on both sides.
            Defaults to 0.
        dilation (int | tuple[int, int]): Kernel dilation. Defaults to 1.
        groups (int): Number of blocked connections from input to output
            channels. Defaults to 1.
        bias (bool): Whether to add a learnable static bias after the dynamic
            convolution. Defaults to False.
        kernel_num (int): Number of candidate kernels. Defaults to 4.
        reduction (float): Hidden width of the attention branch as a fraction
            of ``in_channels``. Defaults to 0.0625.
        min_channels (int): Lower bound of the hidden width. Defaults to 16.
        temperature (float): Initial softmax temperature of the kernel
            attention; change it with :meth:`update_temperature` (e.g. with
            ``ODConvTemperatureHook``). Defaults to 1.0.
        attention_norm_cfg (dict, optional): Norm of the hidden layer of the
            attention branch, built by :func:`mmcv.cnn.build_norm_layer` on a
            (B, hidden) tensor. It must not depend on the batch. None means no
            norm and a bias in the first FC. Defaults to ``dict(type='LN')``.
        padding_mode (str): Only ``'zeros'`` is supported; wrap the module
            with an explicit padding layer otherwise. Defaults to 'zeros'.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Union[int, Tuple[int, int]] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 groups: int = 1,
                 bias: bool = False,
                 kernel_num: int = 4,
                 reduction: float = 0.0625,
                 min_channels: int = 16,
                 temperature: float = 1.0,
                 attention_norm_cfg: Optional[dict] = dict(type='LN'),
                 padding_mode: str = 'zeros'):
        # A BaseModule without init_cfg: init_weights is its own.
        super().__init__()
        check_int('ODConv2d', 'groups', groups)
        check_int('ODConv2d', 'kernel_num', kernel_num)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f'ODConv2d: in_channels ({in_channels}) and out_channels '
                f'({out_channels}) must be divisible by groups ({groups})')
        if reduction <= 0:
            raise ValueError(
                f'ODConv2d: reduction must be > 0, got {reduction}')
        if padding_mode != 'zeros':
            raise ValueError(
                f"ODConv2d: padding_mode must be 'zeros', got "
                f"{padding_mode!r}; use ConvModule(padding_mode=...) for an "
                'explicit padding layer')
        if not isinstance(padding, (int, tuple, list)):
            raise ValueError(
                f'ODConv2d: padding must be an int or a pair, got {padding!r}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.transposed = False
        self.output_padding = (0, 0)
        self.padding_mode = padding_mode
        self.kernel_num = kernel_num
        # A buffer, saved with the weights: the kernel attention was trained
        # at the annealed temperature of its epoch, so tools/test.py on an
        # early checkpoint must use that temperature, not the default.
        self.register_buffer('temperature', torch.ones(()))
        self.update_temperature(temperature)

        kh, kw = self.kernel_size
        self.weight = nn.Parameter(
            torch.empty(kernel_num, out_channels, in_channels // groups, kh,
                        kw))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)

        hidden = max(int(in_channels * reduction), min_channels)
        self.fc = nn.Linear(
            in_channels, hidden, bias=attention_norm_cfg is None)
        if attention_norm_cfg is None:
            self.norm = nn.Identity()
        else:
            _, self.norm = build_norm_layer(attention_norm_cfg, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.channel_fc = nn.Linear(hidden, in_channels)
        self.is_depthwise = in_channels == groups == out_channels
        self.filter_fc = (None if self.is_depthwise else nn.Linear(
            hidden, out_channels))
        self.spatial_fc = (None if kh * kw == 1 else nn.Linear(
            hidden, kh * kw))
        self.kernel_fc = (None if kernel_num == 1 else nn.Linear(
            hidden, kernel_num))
        # With one static kernel and no spatial extent the attentions are
        # per-channel scales of x and y: no per-sample kernel is needed.
        self.use_factorized = kernel_num == 1 and kh * kw == 1
        self.init_weights()

    def update_temperature(self, temperature: float) -> None:
        """Set the softmax temperature of the kernel attention.

        Args:
            temperature (float): A positive temperature; large values make
                the kernel attention close to uniform.
        """
        temperature = float(temperature)
        if not temperature > 0 or math.isinf(temperature):
            raise ValueError('ODConv2d: temperature must be a positive '
                             f'finite number, got {temperature}')
        self.temperature.fill_(temperature)

    def attentions(self, x: torch.Tensor) -> ODConvAttention:
        """Predict the four attentions of every sample of ``x``.

        Args:
            x (Tensor): Input of shape (B, in_channels, H, W).

        Returns:
            ODConvAttention: The attentions; skipped ones are None.
        """
        h = self.relu(self.norm(self.fc(x.mean(dim=(2, 3)))))
        channel = torch.sigmoid(self.channel_fc(h))
        filt = None if self.filter_fc is None else torch.sigmoid(
            self.filter_fc(h))
        spatial = None
        if self.spatial_fc is not None:
            spatial = torch.sigmoid(self.spatial_fc(h)).view(
                -1, *self.kernel_size)
        kernel = None
        if self.kernel_fc is not None:
            kernel = torch.softmax(self.kernel_fc(h) / self.temperature, 1)
        return ODConvAttention(channel, filt, spatial, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the dynamic convolution.

        Args:
            x (Tensor): Input of shape (B, in_channels, H, W).

        Returns:
            Tensor: Output of shape (B, out_channels, H', W').
        """
        check_maps('ODConv2d', x, self.in_channels)
        att = self.attentions(x)
        kernels = kernels_for(x)
        if self.use_factorized and kernels != 'reference':
            y = _odconv_kernels.factorized_forward(self, x, att)
        elif kernels == 'traced':
            # torch.compile / torch.export: no batch size in conv groups.
            y = _odconv_kernels.per_sample_forward(self, x, att)
        else:
            batch, _, height, width = x.shape
            weight = self.aggregate_weight(att)
            # One grouped conv for the whole batch: sample b uses the groups
            # b*groups..(b+1)*groups of the folded input.
            y = F.conv2d(
                x.reshape(1, -1, height, width),
                weight.reshape(-1, *weight.shape[2:]),
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups * batch)
            y = y.view(batch, self.out_channels, *y.shape[-2:])
            if kernels == 'device' and not x.is_contiguous():
                # Folding the batch into the channels needs NCHW; the
                # output goes back to the input's channels_last, so the
                # layers after it keep their layout.
                y = y.contiguous(memory_format=torch.channels_last)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'kernel_size={self.kernel_size}, stride={self.stride}, '
                f'padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, bias={self.bias is not None}, '
                f'kernel_num={self.kernel_num}, '
                f'temperature={self.temperature.item():g}')
