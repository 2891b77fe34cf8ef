"""EfficientNet-DSP backbone (paper sections 2 and 3.2-3.4, table 2).

The layout (the paper's fig. 2 is not available to us) and the reasons for it
are documented in ``docs/architecture.md``.
"""
import copy
import math
from functools import partial
from typing import Dict, NamedTuple, Optional, Sequence

import torch
from mmcv.cnn import ConvModule
from mmengine.model import Sequential
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmpretrain.models.backbones import EfficientNetV2
from mmpretrain.models.backbones.efficientnet import EdgeResidual
from mmpretrain.models.backbones.efficientnet_v2 import EnhancedConvModule
from mmpretrain.models.utils import InvertedResidual
from mmpretrain.registry import MODELS

from .. import layers  # noqa: F401  (registers the DSP bricks)
from ..layers.dydropblock import depth_schedule
from ..layers.folded_conv_module import fold_bn_act
from ..utils.pretrained_report import by_module as _by_module  # noqa: F401
from ..utils.pretrained_report import (load_pretrained, reporting_loads,
                                       split_pretrained)
from ._dsp_layout import InvalidArchError, parse_dsp_args  # noqa: F401


def _build_brick(cfg: dict, key: str, where: str):
    """Build a brick from mmengine's root registry, naming the config key
    that produced it when it fails (the brick's own message is kept)."""
    try:
        return MMENGINE_MODELS.build(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'EfficientNetDSP: cannot build {key}={cfg} for '
                         f'{where}: {e}') from e


class _DropBlockMixin:
    """Applies an optional ``drop_block`` to the output of a block.

    The DropBlock sits on the block's output, after the residual sum, as in
    the DropBlock paper's ResNet (it masks the skip path as well); being a
    parameter-free attribute of the block, it adds no state_dict keys and
    leaves the block indices of the stage unchanged, so EfficientNetV2
    checkpoints still line up.
    """

    def _init_drop_block(self, dropblock_cfg: Optional[dict], where: str):
        self.drop_block = None if dropblock_cfg is None else _build_brick(
            dropblock_cfg, 'dropblock_cfg', where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.drop_block is not None:
            out = self.drop_block(out)
        return out


class FusedMBConvDSP(_DropBlockMixin, EdgeResidual):
    """MMPretrain's Fused-MBConv (``EdgeResidual``) with an optional
    DyDropBlock on its output.

    Args:
        dropblock_cfg (dict, optional): Config of the DyDropBlock applied to
            the block output, built from mmengine's root ``MODELS``. None
            means no DropBlock. Defaults to None.
        where (str): Position of the block, used in error messages.
        **kwargs: Arguments of
            :class:`mmpretrain.models.backbones.efficientnet.EdgeResidual`.
    """

    def __init__(self,
                 *args,
                 dropblock_cfg: Optional[dict] = None,
                 where: str = 'a Fused-MBConv block',
                 **kwargs):
        super().__init__(*args, **kwargs)
        self._init_drop_block(dropblock_cfg, where)


class MBConvDSP(_DropBlockMixin, InvertedResidual):
    """MMPretrain's MBConv (``InvertedResidual``) with any attention brick in
    its SE slot and an optional DyDropBlock on its output.

    The slot and forward of the parent are reused, so the state_dict layout
    is MMPretrain's and an ``SE`` attention has exactly MMPretrain's keys.

    Args:
        attention_cfg (dict, optional): Config of a brick of mmengine's root
            ``MODELS`` that keeps the input shape (``SE``, ``SAR``, ``ECA``,
            ``CBAM``, ...), ``in_channels`` included. None means no
            attention. Defaults to None.
        dropblock_cfg (dict, optional): DyDropBlock config for the output.
            Defaults to None.
        where (str): Position of the block, used in error messages.
        *args, **kwargs: Other arguments of
            :class:`mmpretrain.models.utils.InvertedResidual`
            (``in_channels``, ``out_channels``, ``mid_channels``,
            ``kernel_size``, ``stride``, ``conv_cfg``, ``norm_cfg``, ...)
            but ``se_cfg``.
    """

    def __init__(self,
                 *args,
                 attention_cfg: Optional[dict] = None,
                 dropblock_cfg: Optional[dict] = None,
                 where: str = 'an MBConv block',
                 **kwargs):
        if 'se_cfg' in kwargs:
            raise TypeError('MBConvDSP takes attention_cfg, not se_cfg')
        if 'dy_cfg' in kwargs:
            raise TypeError('MBConvDSP takes no dy_cfg; the block with a '
                            'Dy-ODConv depthwise unit is DyMBConv')
        super().__init__(*args, se_cfg=None, **kwargs)
        self._init_attention(attention_cfg, where)
        self._init_drop_block(dropblock_cfg, where)

    def _init_attention(self, attention_cfg: Optional[dict], where: str):
        if attention_cfg is None:
            return
        self.with_se = True
        self.se = _build_brick(attention_cfg, 'attention_cfg', where)
        # InvertedResidual has no slot for a brick other than its SELayer, so
        # the attention comes last; moving linear_conv behind it restores
        # MMPretrain's module, parameter and state_dict order (expand,
        # depthwise, se, linear), which checkpoint and optimizer tools see.
        self._modules['linear_conv'] = self._modules.pop('linear_conv')


class DyMBConv(MBConvDSP):
    """Dy-MBConv (paper section 3.4, fig. 6): MBConv whose depthwise
    ConvModule is the Dy-ODConv unit (ODConv2d -> norm -> DyReLU).

    The unit takes the depthwise conv's place and name, ``depthwise_conv``,
    so the state_dict keeps MMPretrain's ``InvertedResidual`` layout: its
    ``bn`` keys load from an EfficientNetV2 checkpoint, and a plain
    depthwise weight there seeds every ODConv candidate kernel.

    Args:
        dy_cfg (dict): Config of the Dy-ODConv unit but its channels, kernel
            size, stride and groups, which are the depthwise conv's.
            Defaults to ``dict(type='DyODConv')``.
        attention_cfg, dropblock_cfg, where, *args, **kwargs: As for
            :class:`MBConvDSP`.
    """

    def __init__(self,
                 *args,
                 dy_cfg: dict = dict(type='DyODConv'),
                 attention_cfg: Optional[dict] = None,
                 dropblock_cfg: Optional[dict] = None,
                 where: str = 'a Dy-MBConv block',
                 **kwargs):
        super().__init__(*args, where=where, **kwargs)
        conv = self.depthwise_conv.conv
        # Built before the attention, so that a seeded run draws the same
        # initial weights as ever. Assigning to the existing attribute keeps
        # its place in the module order, hence MMPretrain's parameter order.
        self.depthwise_conv = _build_brick(
            dict(
                dy_cfg,
                in_channels=conv.in_channels,
                out_channels=conv.out_channels,
                kernel_size=conv.kernel_size,
                stride=conv.stride,
                groups=conv.groups), 'dy_cfg', where)
        self._init_attention(attention_cfg, where)
        self._init_drop_block(dropblock_cfg, where)
        # Its training BN + Swish keep one map for the backward, not two:
        # Dy-MBConv's extra depthwise unit would otherwise cost DSP more
        # activation memory than EfficientNetV2 (docs/gpu.md).
        if self.with_expand_conv:
            fold_bn_act(self.expand_conv)


class BlockArgs(NamedTuple):
    """What a block builder of :attr:`EfficientNetDSP.block_builders` gets:
    ``block``, the arguments EfficientNetV2 gives the Fused-MBConv or MBConv
    of this place, and the DSP options of its stage (``attention_cfg`` with
    ``in_channels`` set, ``dy_cfg``, ``dropblock_cfg`` with ``drop_prob``
    set, all None where unused) and ``where``, the position for errors."""
    block: dict
    attention_cfg: Optional[dict]
    dy_cfg: Optional[dict]
    dropblock_cfg: Optional[dict]
    where: str


def _conv_block(b: BlockArgs):
    # EfficientNetV2's Fused-MBConv1, a residual conv that no DSP option
    # reaches.
    a = b.block
    has_skip = a['stride'] == 1 and a['in_channels'] == a['out_channels']
    return EnhancedConvModule(
        a['in_channels'],
        a['out_channels'],
        a['kernel_size'],
        stride=a['stride'],
        padding=1,
        has_skip=has_skip,
        drop_path_rate=a['drop_path_rate'] if has_skip else 0.,
        norm_cfg=a['norm_cfg'],
        act_cfg=a['act_cfg'])


def _fused_block(b: BlockArgs):
    if b.dropblock_cfg is None:
        return EdgeResidual(**b.block)
    return FusedMBConvDSP(
        **b.block, dropblock_cfg=b.dropblock_cfg, where=b.where)


def _mbconv_block(b: BlockArgs):
    return MBConvDSP(
        **b.block,
        attention_cfg=b.attention_cfg,
        dropblock_cfg=b.dropblock_cfg,
        where=b.where)


def _dy_mbconv_block(b: BlockArgs):
    return DyMBConv(
        **b.block,
        dy_cfg=b.dy_cfg,
        attention_cfg=b.attention_cfg,
        dropblock_cfg=b.dropblock_cfg,
        where=b.where)


def _se_defaults(cfg: dict, act_cfg: dict, expand_ratio: float,
                 se_ratio: float, **_) -> None:
    # MMPretrain's EfficientNetV2 squeezes to se_ratio of the block input; a
    # stage that is Fused-MBConv in the arch table has se_ratio 0, so it gets
    # EfficientNet's usual 0.25.
    if 'squeeze_channels' not in cfg and 'ratio' not in cfg:
        cfg['ratio'] = expand_ratio * (1.0 / (se_ratio or 0.25))
        cfg.setdefault('divisor', 1)
    cfg.setdefault('act_cfg', (act_cfg, dict(type='Sigmoid')))


def _sar_defaults(cfg: dict, mid_channels: int, **_) -> None:
    # SAR's 64 groups (the paper's) must divide the width; the expanded
    # widths of 's', 'l' and 'xl' are multiples of 64 but not all those of
    # 'm' and 'b0'-'b3' (e.g. 672), which then get the largest power-of-two
    # divisor instead of failing.
    cfg.setdefault('groups', math.gcd(64, mid_channels))


@MODELS.register_module()
class EfficientNetDSP(EfficientNetV2):
    """EfficientNet-DSP backbone, MMPretrain's EfficientNetV2 with the DSP
    pieces of Zhu et al. (2026).

    Stage indices are indices into ``self.layers``, as for ``out_indices``
    and ``frozen_stages``: 0 is the stem, ``1 .. len(arch) - 1`` are the
    block stages (rows of the arch table, e.g. for ``'s'``: 1 plain conv, 2-3
    Fused-MBConv, 4-6 MBConv) and ``len(arch)`` is the final 1x1 conv.

    Each block stage is built by the builder :attr:`block_builders` gives
    its kind: 'conv' and 'fused' as in the arch table (MMPretrain's blocks,
    :class:`FusedMBConvDSP` where a DropBlock follows), 'mbconv' as in the
    arch table (:class:`MBConvDSP` with ``attention_cfg``, section 3.2), and
    'dy' for the stages of ``dy_stages`` (:class:`DyMBConv`, section 3.4).
    The attention is any brick of mmengine's root ``MODELS`` that keeps the
    shape, built with ``in_channels`` = the block's expanded width (plus the
    defaults of :attr:`attention_defaults` for its type): a new brick is a
    config change.

    DyDropBlock (section 3.3) follows every block of the stages in
    ``dropblock_cfg['stages']`` at the rate of eq. 8 for the block's depth
    ``n`` among all blocks, ``p_n = start + (final - start) * n / depth``.

    With ``attention_cfg=dict(type='SE')``, ``dy_stages=()`` and
    ``dropblock_cfg=None`` the network is exactly ``EfficientNetV2(arch)``:
    same state_dict and outputs. The DSP arguments are keyword-only, so
    EfficientNetV2's positional arguments keep their places, and a bad
    ``arch`` raises :class:`InvalidArchError`, an ``AssertionError`` as in
    EfficientNetV2 and a ``ValueError``.

    Args:
        arch (str): A key of ``EfficientNetV2.arch_settings``
            ('s', 'm', 'l', 'xl', 'b0'-'b3' and the long names).
            Defaults to 's'.
        attention_cfg (dict, optional): Attention of the MBConv and Dy-MBConv
            blocks. ``SE`` gets MMPretrain's defaults (squeeze to
            ``se_ratio`` of the block input, arch activation then sigmoid),
            ``SAR`` without ``groups`` gets ``gcd(64, width)`` groups (64 for
            every block of 's', 'l', 'xl'). None means no attention.
            Defaults to ``dict(type='SAR')``.
        attention_stages (Sequence[int], optional): The MBConv / Dy-MBConv
            stages that get the attention. None means the stages that are
            MBConv in the arch table, i.e. where EfficientNetV2 has SE (a
            Fused-MBConv stage turned Dy-MBConv gets none). Defaults to None.
        dy_stages (Sequence[int]): Fused-MBConv or MBConv stages built as
            Dy-MBConv. Defaults to ``(2, 3)``, the two Fused-MBConv stages of
            'S' (see ``docs/architecture.md``).
        dy_cfg (dict): Extra arguments of the Dy-ODConv unit (``type``
            defaults to 'DyODConv'; e.g. ``kernel_num``, ``reduction``,
            ``act_cfg``). ``norm_cfg`` defaults to the backbone's.
            Defaults to ``dict(kernel_num=4)``.
        dropblock_cfg (dict, optional): DyDropBlock placement: ``start``
            and ``final`` (``p_s``, ``p_f`` of eq. 8), ``stages`` (block
            stages whose blocks get a DropBlock, None meaning every MBConv /
            Dy-MBConv stage), ``type`` (default 'DyDropBlock') and any other
            DyDropBlock argument such as ``block_size``. None disables it.
            Defaults to ``dict(start=0., final=0.1, block_size=7)``.
        **kwargs: Other arguments of
            :class:`mmpretrain.models.backbones.EfficientNetV2`
            (``in_channels``, ``drop_path_rate``, ``out_indices``,
            ``frozen_stages``, ``conv_cfg``, ``norm_cfg``, ``act_cfg``,
            ``norm_eval``, ``with_cp``, ``init_cfg``), positional ones
            included. A ``Pretrained``-only ``init_cfg`` is run after
            EfficientNetV2's default init, for what the checkpoint lacks;
            every ``Pretrained`` load is reported (see :meth:`init_weights`).
    """

    #: The builder of each block kind, ``f(BlockArgs) -> block``: 'conv',
    #: 'fused' and 'mbconv' are the kinds of EfficientNetV2's arch table,
    #: 'dy' is Dy-MBConv (their names: ``_dsp_layout.KIND_NAMES``).
    block_builders = dict(
        conv=_conv_block,
        fused=_fused_block,
        mbconv=_mbconv_block,
        dy=_dy_mbconv_block)

    #: Block-dependent defaults of some attention types, ``f(cfg, *,
    #: act_cfg, mid_channels, expand_ratio, se_ratio)`` filling ``cfg`` in
    #: place; any other type gets ``in_channels`` only.
    attention_defaults = dict(SE=_se_defaults, SAR=_sar_defaults)

    def __init__(self,
                 arch: str = 's',
                 *args,
                 attention_cfg: Optional[dict] = dict(type='SAR'),
                 attention_stages: Optional[Sequence[int]] = None,
                 dy_stages: Sequence[int] = (2, 3),
                 dy_cfg: Optional[dict] = dict(kernel_num=4),
                 dropblock_cfg: Optional[dict] = dict(
                     start=0., final=0.1, block_size=7),
                 **kwargs):
        layout = parse_dsp_args(arch, self.arch_settings, attention_cfg,
                                attention_stages, dy_stages, dy_cfg,
                                dropblock_cfg)
        # make_layers() runs inside EfficientNetV2.__init__ and reads the
        # layout (block_kinds, dy_cfg, ...), so it is set first.
        for name, value in layout._asdict().items():
            setattr(self, name, value)
        self.dropblock_rates: Dict[tuple, float] = {}
        others, pretrained = split_pretrained(kwargs.get('init_cfg'))
        only_pretrained = pretrained and not others
        if only_pretrained:
            del kwargs['init_cfg']  # for EfficientNetV2's default, below
        super().__init__(arch, *args, **kwargs)
        if only_pretrained:
            # What the checkpoint lacks (SAR, ODConv, DyReLU, ...) gets
            # EfficientNetV2's init, not PyTorch's defaults; mmengine loads
            # the checkpoint after the other entries.
            self.init_cfg = [*self.init_cfg, *pretrained]

    def make_layers(self):
        """Build the stem, each block stage with the builder of its kind and
        the final 1x1 conv: ``EfficientNetV2.make_layers``, with the block
        chosen per stage."""
        conv = partial(
            ConvModule,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        in_channels = self.arch[0][4]
        self.layers.append(conv(self.in_channels, in_channels, 3, stride=2))
        depth = sum(row[0] for row in self.arch[:-1])
        # Stochastic depth (EfficientNetV2's rule) and the DropBlock rate
        # (eq. 8) both grow with the block's index n among all blocks.
        drop_path_rates = torch.linspace(0, self.drop_path_rate,
                                         depth).tolist()
        drop_probs = depth_schedule(
            self.dropblock_cfg.get('start', 0.), self.dropblock_cfg['final'],
            depth) if self.dropblock_cfg else [None] * depth
        n = 0
        for stage, row in enumerate(self.arch[:-1], start=1):
            build, blocks = self.block_builders[self.block_kinds[stage]], []
            for i in range(row[0]):
                blocks.append(
                    build(
                        self._block_args(stage, i, in_channels,
                                         drop_path_rates[n], drop_probs[n])))
                in_channels, n = row[5], n + 1
            self.layers.append(Sequential(*blocks))
        self.layers.append(
            conv(in_channels, self.out_channels, self.arch[-1][1],
                 stride=self.arch[-1][2]))

    def _block_args(self, stage: int, i: int, in_channels: int,
                    drop_path_rate: float,
                    drop_prob: Optional[float]) -> BlockArgs:
        (_, kernel_size, stride, expand_ratio, _, out_channels, se_ratio,
         _) = self.arch[stage - 1]
        mid_channels = int(in_channels * expand_ratio)
        stride = stride if i == 0 else 1
        attention_cfg = dropblock_cfg = None
        if self.attention_cfg is not None and stage in self.attention_stages:
            attention_cfg = dict(
                copy.deepcopy(self.attention_cfg), in_channels=mid_channels)
            fill_defaults = self.attention_defaults.get(attention_cfg['type'])
            if fill_defaults is not None:
                fill_defaults(
                    attention_cfg,
                    act_cfg=self.act_cfg,
                    mid_channels=mid_channels,
                    expand_ratio=expand_ratio,
                    se_ratio=se_ratio)
        if stage in self.dropblock_stages:
            self.dropblock_rates[(stage, i)] = drop_prob
            dropblock_cfg = {
                k: v
                for k, v in self.dropblock_cfg.items()
                if k not in ('start', 'final')
            }
            dropblock_cfg['drop_prob'] = drop_prob
        return BlockArgs(
            block=dict(
                in_channels=in_channels,
                out_channels=out_channels,
                mid_channels=mid_channels,
                kernel_size=kernel_size,
                stride=stride,
                conv_cfg=self.conv_cfg if stride == 2 else None,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg,
                drop_path_rate=drop_path_rate,
                with_cp=self.with_cp),
            attention_cfg=attention_cfg,
            dy_cfg=self.dy_cfg and dict(
                dict(norm_cfg=self.norm_cfg), **self.dy_cfg),
            dropblock_cfg=dropblock_cfg,
            where=f'stage {stage} block {i}')

    def train(self, mode: bool = True):
        """Set train / eval mode (with ``frozen_stages`` and ``norm_eval``
        as EfficientNetV2) and return the module, which
        ``EfficientNetV2.train`` forgets, so ``model.eval()`` chains."""
        super().train(mode)
        return self

    def init_weights(self):
        """Initialise as mmengine does (other ``init_cfg`` entries first,
        ``Pretrained`` checkpoints last, ``strict=False``), and report each
        checkpoint load: see
        :func:`mmdsp.models.utils.pretrained_report.reporting_loads`; the
        last report is kept as ``self.pretrained_report``."""
        _, pretrained = split_pretrained(self.init_cfg)
        with reporting_loads(self, [c['checkpoint'] for c in pretrained]):
            super().init_weights()

    def load_fitting_weights(self,
                             checkpoint: str,
                             prefix: Optional[str] = None,
                             map_location: str = 'cpu') -> dict:
        """Load every tensor of a checkpoint that fits (same key and shape)
        and report the rest, as a ``Pretrained`` ``init_cfg`` does; see
        :func:`mmdsp.models.utils.pretrained_report.load_pretrained` for the
        arguments and the report returned."""
        return load_pretrained(self, checkpoint, prefix, map_location)
