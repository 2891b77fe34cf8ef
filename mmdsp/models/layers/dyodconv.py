"""The Dy-ODConv unit of EfficientNet-DSP (paper section 3.4, fig. 6)."""
import inspect
from typing import Optional, Tuple, Union

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule, constant_init
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.utils import _pair

from . import _dyrelu_device, _dyrelu_kernels
from ._impl import kernels_for
from .dyrelu import DyReLU
from .odconv import ODConv2d


@MODELS.register_module()
class DyODConv(BaseModule):
    """ODConv2d -> norm -> Dynamic ReLU, the Dy-ODConv unit.

    It replaces the depthwise 3x3 :class:`mmcv.cnn.ConvModule` of MBConv in
    Dy-MBConv blocks, so it keeps ConvModule's layout and state-dict keys:
    ``conv.*`` (the :class:`ODConv2d`; its ``conv.weight`` gains a leading
    ``kernel_num`` dim, and a 4-D ConvModule ``conv.weight`` loads into every
    candidate), ``<norm_name>.*`` (``bn.*`` for BN, as ConvModule, so the
    pretrained norm loads unchanged) and ``activate.*`` (the DyReLU FCs, new
    keys). The attention FCs under ``conv.`` are new keys as well.

    Args:
        in_channels (int): Number of input channels.
        out_channels (int): Number of output channels.
        kernel_size (int | tuple[int, int]): Size of the kernel.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int], optional): Zero padding. None means
            "same" padding, ``dilation * (kernel_size - 1) // 2``.
            Defaults to None.
        dilation (int | tuple[int, int]): Kernel dilation. Defaults to 1.
        groups (int): Conv groups; ``groups == in_channels == out_channels``
            is the depthwise conv of MBConv. Defaults to 1.
        kernel_num (int): Candidate kernels of ODConv2d. Defaults to 4.
        reduction (float): Attention reduction of ODConv2d.
            Defaults to 0.0625.
        bias (bool | str): Conv bias; 'auto' adds one only without a norm.
            Defaults to 'auto'.
        norm_cfg (dict, optional): Norm after the conv. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict, optional): Activation. A type whose constructor takes
            ``channels`` (such as DyReLU) gets ``channels=out_channels``.
            Defaults to ``dict(type='DyReLU')``.
        conv_kwargs (dict, optional): Further ODConv2d arguments
            (``min_channels``, ``temperature``, ``attention_norm_cfg``).
    """

    _abbr_ = 'dyodconv'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Optional[Union[int, Tuple[int, int]]] = None,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 groups: int = 1,
                 kernel_num: int = 4,
                 reduction: float = 0.0625,
                 bias: Union[bool, str] = 'auto',
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='DyReLU'),
                 conv_kwargs: Optional[dict] = None):
        super().__init__()
        if padding is None:
            padding = tuple(d * (k - 1) // 2 for k, d in zip(
                _pair(kernel_size), _pair(dilation)))
        self.with_norm = norm_cfg is not None
        self.with_activation = act_cfg is not None
        if bias == 'auto':
            bias = not self.with_norm
        self.conv = ODConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            kernel_num=kernel_num,
            reduction=reduction,
            **(conv_kwargs or {}))
        # Mirror ConvModule, whose attributes user code reads.
        self.in_channels = self.conv.in_channels
        self.out_channels = self.conv.out_channels
        self.kernel_size = self.conv.kernel_size
        self.stride = self.conv.stride
        self.padding = self.conv.padding
        self.dilation = self.conv.dilation
        self.groups = self.conv.groups

        if self.with_norm:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        else:
            self.norm_name = None
        if self.with_activation:
            self.activate = build_activation_layer(
                self._complete_act_cfg(act_cfg, out_channels))
        self.init_weights()

    @staticmethod
    def _complete_act_cfg(act_cfg: dict, channels: int) -> dict:
        if 'type' not in act_cfg:
            raise KeyError(f'DyODConv: act_cfg needs a "type" key: {act_cfg}')
        act_cfg = act_cfg.copy()
        act_type = act_cfg['type']
        if isinstance(act_type, str):
            act_type = MODELS.get(act_type)
            if act_type is None:
                raise KeyError(f'DyODConv: activation {act_cfg["type"]!r} '
                               'is not registered in the MODELS registry')
        if 'channels' in inspect.signature(act_type).parameters:
            act_cfg.setdefault('channels', channels)
        return act_cfg

    @property
    def norm(self) -> Optional[nn.Module]:
        """The norm layer, or None."""
        return getattr(self, self.norm_name) if self.norm_name else None

    def init_weights(self) -> None:
        """Re-initialise the conv and set the norm to identity (1, 0)."""
        self.conv.init_weights()
        if self.with_norm:
            constant_init(self.norm, 1, bias=0)

    def update_temperature(self, temperature: float) -> None:
        """Forward the kernel-attention temperature to :attr:`conv`."""
        self.conv.update_temperature(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        fuse = self._fuse_norm_act(x)
        if fuse == 'train':
            # BN folded into DyReLU's pieces (same math): the backward keeps
            # the conv output only, not the normalised map as well.
            return _dyrelu_device.bn_dyrelu_train(self.norm, self.activate, x)
        if fuse == 'eval':
            # Inference: BN folded into DyReLU's pieces (same math).
            return _dyrelu_kernels.bn_dyrelu_eval(self.norm, self.activate, x)
        if self.with_norm:
            x = self.norm(x)
        if self.with_activation:
            x = self.activate(x)
        return x

    def _fuse_norm_act(self, x: torch.Tensor) -> Optional[str]:
        """Whether the tuned kernels fold the BN into the two-piece DyReLU:
        ``'train'`` for a training-mode BN under autograd on the device
        kernels (``_dyrelu_device.bn_dyrelu_train``), ``'eval'`` for an eval-mode
        BN on a CPU without autograd (``_dyrelu_kernels.bn_dyrelu_eval``),
        else None; only plain modules without hooks."""
        kernels = kernels_for(x)
        if kernels not in ('cpu', 'device') \
                or not (self.with_norm and self.with_activation):
            return None
        norm, act = self.norm, self.activate
        if not (type(norm) is nn.BatchNorm2d and type(act) is DyReLU
                and act.k == 2 and not any(
                    m._forward_hooks or m._forward_pre_hooks
                    for m in (norm, act))):
            return None
        if torch.is_grad_enabled():
            # The fold saves memory (GPU); the CPU keeps its faster oneDNN
            # BN and tuned DyReLU.
            return 'train' if norm.training and kernels == 'device' else None
        # Folded into y's own slopes (no centring), it is exact in float32
        # only.
        if kernels == 'cpu' and not norm.training \
                and norm.running_mean is not None \
                and x.dtype == torch.float32:
            return 'eval'
        return None
