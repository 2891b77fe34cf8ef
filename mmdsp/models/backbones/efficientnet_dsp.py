"""EfficientNet-DSP backbone (paper sections 2 and 3.2-3.4, table 2).

The layout (the paper's fig. 2 is not available to us) and the reasons for it
are documented in ``docs/architecture.md``.
"""
import copy
import inspect
import logging
import math
import re
from collections import Counter
from typing import Dict, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import Sequential
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmpretrain.models.backbones import EfficientNetV2
from mmpretrain.models.backbones.efficientnet import EdgeResidual
from mmpretrain.models.utils import InvertedResidual
from mmpretrain.registry import MODELS

from .. import layers  # noqa: F401  (registers the DSP bricks)
from ..layers.dydropblock import depth_schedule
from ..layers.odconv import ODConv2d
from ._dsp_layout import InvalidArchError, parse_dsp_args  # noqa: F401

# EfficientNetV2's default init, which a Pretrained-only init_cfg would drop.
_V2_INIT = inspect.signature(EfficientNetV2.__init__).parameters[
    'init_cfg'].default


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
    """MBConv with a pluggable attention and an optional DyDropBlock on its
    output.

    The state_dict layout is MMPretrain's ``InvertedResidual``: the attention
    is stored as ``se`` (the slot and forward of the parent are reused, so an
    ``SE`` attention has exactly MMPretrain's keys).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        mid_channels (int): Channels of the depthwise stage.
        kernel_size (int): Depthwise kernel size. Defaults to 3.
        stride (int): Depthwise stride. Defaults to 1.
        attention_cfg (dict, optional): Attention brick config (``SE``,
            ``SAR``, ``ECA``, ``CBAM`` or any module of mmengine's root
            ``MODELS`` keeping the input shape); ``in_channels`` must already
            be set. None means no attention. Defaults to None.
        dropblock_cfg (dict, optional): DyDropBlock config for the output.
            Defaults to None.
        where (str): Position of the block, used in error messages.
        **kwargs: Other arguments of
            :class:`mmpretrain.models.utils.InvertedResidual` (``conv_cfg``,
            ``norm_cfg``, ``act_cfg``, ``drop_path_rate``, ``with_cp``,
            ``init_cfg``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 mid_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 attention_cfg: Optional[dict] = None,
                 dropblock_cfg: Optional[dict] = None,
                 where: str = 'an MBConv block',
                 **kwargs):
        if 'se_cfg' in kwargs:
            raise TypeError('MBConvDSP takes attention_cfg, not se_cfg')
        if 'dy_cfg' in kwargs:
            raise TypeError('MBConvDSP takes no dy_cfg; the block with a '
                            'Dy-ODConv depthwise unit is DyMBConv')
        super().__init__(
            in_channels,
            out_channels,
            mid_channels,
            kernel_size=kernel_size,
            stride=stride,
            se_cfg=None,
            **kwargs)
        self._init_attention(attention_cfg, where)
        self._init_drop_block(dropblock_cfg, where)

    def _init_attention(self, attention_cfg: Optional[dict], where: str):
        if attention_cfg is None:
            return
        self.with_se = True
        self.se = _build_brick(attention_cfg, 'attention_cfg', where)
        # Re-register linear_conv after the attention so that modules,
        # parameters and state_dict keys come in MMPretrain's order (expand,
        # depthwise, se, linear), as optimizers and checkpoint tools see them.
        linear_conv = self.linear_conv
        del self.linear_conv
        self.linear_conv = linear_conv


class DyMBConv(MBConvDSP):
    """Dy-MBConv (paper section 3.4, fig. 6): MBConv whose depthwise
    ConvModule is the Dy-ODConv unit (ODConv2d -> norm -> DyReLU).

    The unit takes the depthwise conv's place and name, ``depthwise_conv``,
    so the state_dict keeps MMPretrain's ``InvertedResidual`` layout: its
    ``bn`` keys load from an EfficientNetV2 checkpoint, and a plain
    depthwise weight there seeds every ODConv candidate kernel.

    Args:
        in_channels, out_channels, mid_channels, kernel_size, stride: As for
            :class:`MBConvDSP`.
        dy_cfg (dict): Config of the Dy-ODConv unit, complete except for
            the channels, kernel size, stride and groups filled in here.
            Defaults to ``dict(type='DyODConv')``.
        attention_cfg (dict, optional): As for :class:`MBConvDSP`.
            Defaults to None.
        dropblock_cfg (dict, optional): As for :class:`MBConvDSP`.
            Defaults to None.
        where (str): Position of the block, used in error messages.
        **kwargs: Other arguments of
            :class:`mmpretrain.models.utils.InvertedResidual`.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 mid_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 dy_cfg: dict = dict(type='DyODConv'),
                 attention_cfg: Optional[dict] = None,
                 dropblock_cfg: Optional[dict] = None,
                 where: str = 'a Dy-MBConv block',
                 **kwargs):
        super().__init__(
            in_channels,
            out_channels,
            mid_channels,
            kernel_size=kernel_size,
            stride=stride,
            where=where,
            **kwargs)
        # Built before the attention, so that a seeded run draws the same
        # initial weights as ever. Assigning to the existing attribute keeps
        # its place in the module order, hence MMPretrain's parameter order.
        self.depthwise_conv = _build_brick(
            dict(
                dy_cfg,
                in_channels=mid_channels,
                out_channels=mid_channels,
                kernel_size=kernel_size,
                stride=stride,
                groups=mid_channels), 'dy_cfg', where)
        self._init_attention(attention_cfg, where)
        self._init_drop_block(dropblock_cfg, where)


@MODELS.register_module()
class EfficientNetDSP(EfficientNetV2):
    """EfficientNet-DSP backbone, MMPretrain's EfficientNetV2 with the DSP
    pieces of Zhu et al. (2026).

    Stage indices below are indices into ``self.layers``, the same ones as
    ``out_indices`` and ``frozen_stages`` use: 0 is the stem, ``1 ..
    len(arch) - 1`` are the block stages (rows of the arch table, e.g. for
    ``'s'``: 1 plain conv stage, 2-3 Fused-MBConv, 4-6 MBConv) and
    ``len(arch)`` is the final 1x1 conv.

    Per block stage the block is:

    - an arch-table Fused-MBConv stage: Fused-MBConv as is, or Dy-MBConv if
      listed in ``dy_stages``;
    - an arch-table MBConv stage: MBConv with ``attention_cfg`` (section
      3.2), or Dy-MBConv if listed in ``dy_stages`` (section 3.4).

    Dy-MBConv (:class:`DyMBConv`) is MBConv (expand 1x1, depthwise,
    attention, project 1x1) whose depthwise ConvModule is the Dy-ODConv unit
    (ODConv2d -> norm -> DyReLU).

    DyDropBlock (section 3.3) follows the output of every block of the
    stages in ``dropblock_cfg['stages']``, with the rate of eq. 8 for the
    block's depth: ``p_n = start + (final - start) * n / depth`` where ``n``
    (1-based) counts the blocks of all block stages and ``depth`` is their
    total, so a block's rate does not depend on which stages carry one.

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
            blocks, built from mmengine's root ``MODELS`` with
            ``in_channels`` set to the block's expanded width. For ``SE`` the
            MMPretrain defaults (squeeze to ``se_ratio`` of the block input,
            arch activation then sigmoid) are filled in unless given; for
            ``SAR`` without ``groups``, ``gcd(64, width)`` groups are used
            (64 for every block of 's', 'l', 'xl'). None
            means no attention. Defaults to ``dict(type='SAR')``.
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
            included. A ``Pretrained`` ``init_cfg`` (e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``)
            loads every checkpoint tensor whose key and shape fit and logs
            the rest (see :meth:`init_weights`).
    """

    # The paper's SAR group count (section 3.2; SAR's default).
    SAR_GROUPS = 64

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
        # make_layers() runs inside EfficientNetV2.__init__ and reads these,
        # so they are set (as plain attributes) first.
        self.arch_kinds = layout.arch_kinds
        self.block_kinds = layout.block_kinds
        self.dy_stages = layout.dy_stages
        self.dy_cfg = layout.dy_cfg
        self.attention_cfg = layout.attention_cfg
        self.attention_stages = layout.attention_stages
        self.dropblock_cfg = layout.dropblock_cfg
        self.dropblock_stages = layout.dropblock_stages
        self.dropblock_rates: Dict[tuple, float] = {}
        super().__init__(arch, *args, **kwargs)
        # The source of the next state_dict load to report on (see
        # load_fitting_weights), None for every other load.
        self._report_source = None

    def _block_attention_cfg(self, stage, mid_channels, expand_ratio,
                             se_ratio) -> Optional[dict]:
        if self.attention_cfg is None or stage not in self.attention_stages:
            return None
        cfg = dict(copy.deepcopy(self.attention_cfg), in_channels=mid_channels)
        if cfg['type'] == 'SE':
            # MMPretrain's EfficientNetV2 squeezes to se_ratio of the block
            # input; a stage that is Fused-MBConv in the arch table has
            # se_ratio 0, so it gets EfficientNet's usual 0.25.
            if 'squeeze_channels' not in cfg and 'ratio' not in cfg:
                cfg['ratio'] = expand_ratio * (1.0 / (se_ratio or 0.25))
                cfg.setdefault('divisor', 1)
            cfg.setdefault('act_cfg', (self.act_cfg, dict(type='Sigmoid')))
        elif cfg['type'] == 'SAR' and 'groups' not in cfg:
            # SAR's 64 groups must divide the width; the expanded widths of
            # 's', 'l' and 'xl' are multiples of 64 but not all those of
            # 'm' and 'b0'-'b3' (e.g. 672), which then get the largest
            # power-of-two divisor instead of failing.
            cfg['groups'] = math.gcd(self.SAR_GROUPS, mid_channels)
        return cfg

    def make_layers(self):
        """Build MMPretrain's layers, then rebuild the block stages that
        differ from it (all MBConv-type stages, and Fused-MBConv stages with
        a DropBlock)."""
        super().make_layers()
        block_rows = self.arch[:-1]
        total_blocks = sum(row[0] for row in block_rows)
        # The same stochastic depth rule as EfficientNetV2.make_layers.
        dpr = torch.linspace(0, self.drop_path_rate, total_blocks).tolist()
        drop_rates = []
        if self.dropblock_cfg is not None:
            drop_rates = depth_schedule(
                self.dropblock_cfg.get('start', 0.),
                self.dropblock_cfg['final'], total_blocks)

        block_idx = 0
        for stage, row in enumerate(block_rows, start=1):
            (repeat, kernel_size, stride, expand_ratio, in_channels,
             out_channels, se_ratio, _) = row
            kind = self.block_kinds[stage]
            with_dropblock = stage in self.dropblock_stages
            if kind == 'conv' or (kind == 'fused' and not with_dropblock):
                block_idx += repeat
                continue  # MMPretrain's blocks, as built
            blocks = []
            for i in range(repeat):
                block_stride = stride if i == 0 else 1
                mid_channels = int(in_channels * expand_ratio)
                where = f'stage {stage} block {i}'
                dropblock_cfg = None
                if with_dropblock:
                    rate = drop_rates[block_idx]
                    self.dropblock_rates[(stage, i)] = rate
                    dropblock_cfg = dict(self.dropblock_cfg, drop_prob=rate)
                    dropblock_cfg.pop('start', None)
                    dropblock_cfg.pop('final', None)
                common = dict(
                    in_channels=in_channels,
                    out_channels=out_channels,
                    mid_channels=mid_channels,
                    kernel_size=kernel_size,
                    stride=block_stride,
                    conv_cfg=self.conv_cfg if block_stride == 2 else None,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg,
                    drop_path_rate=dpr[block_idx],
                    with_cp=self.with_cp,
                    dropblock_cfg=dropblock_cfg,
                    where=where)
                if kind == 'fused':
                    blocks.append(FusedMBConvDSP(**common))
                    in_channels = out_channels
                    block_idx += 1
                    continue
                common['attention_cfg'] = self._block_attention_cfg(
                    stage, mid_channels, expand_ratio, se_ratio)
                if kind == 'dy':
                    dy_cfg = dict(self.dy_cfg)
                    dy_cfg.setdefault('norm_cfg', self.norm_cfg)
                    blocks.append(DyMBConv(dy_cfg=dy_cfg, **common))
                else:
                    blocks.append(MBConvDSP(**common))
                in_channels = out_channels
                block_idx += 1
            self.layers[stage] = Sequential(*blocks)

    def train(self, mode: bool = True):
        """Set train / eval mode (with ``frozen_stages`` and ``norm_eval``
        as EfficientNetV2) and return the module, which
        ``EfficientNetV2.train`` forgets, so ``model.eval()`` chains."""
        super().train(mode)
        return self

    # ------------------------------------------------------------------
    # pretrained loading: mmengine's PretrainedInit, plus a report
    # ------------------------------------------------------------------
    def init_weights(self):
        """Initialise; a ``Pretrained`` ``init_cfg`` loads what fits.

        As in mmengine, the other entries of ``init_cfg`` come first and the
        checkpoint last, through mmengine's ``PretrainedInit``
        (``strict=False``: mismatched shapes and missing or unexpected keys
        are logged, not raised). Unlike mmengine, a ``Pretrained``-only
        ``init_cfg`` keeps EfficientNetV2's default Kaiming / constant init
        for the tensors the checkpoint does not provide (SAR, ODConv
        attention, DyReLU, ...).
        Each load is summarised by :meth:`load_fitting_weights`.
        """
        init_cfgs = self.init_cfg
        if isinstance(init_cfgs, dict):
            init_cfgs = [init_cfgs]
        init_cfgs = list(init_cfgs or [])
        pretrained = [
            c for c in init_cfgs
            if c.get('type') in ('Pretrained', PretrainedInit)
        ]
        if not pretrained or self._is_init:
            super().init_weights()
            return
        original = self.init_cfg
        self.init_cfg = [c for c in init_cfgs if c not in pretrained] or \
            copy.deepcopy(_V2_INIT)
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        for cfg in pretrained:
            self.load_fitting_weights(
                cfg['checkpoint'],
                prefix=cfg.get('prefix'),
                map_location=cfg.get('map_location', 'cpu'))

    def load_fitting_weights(self,
                             checkpoint: str,
                             prefix: Optional[str] = None,
                             map_location: str = 'cpu') -> dict:
        """Load every tensor of a checkpoint that fits (same key and shape),
        with mmengine's ``PretrainedInit``, and log a short report.

        mmengine loads with ``strict=False`` and logs every mismatch; on top
        of it, a checkpoint of which nothing fits raises, and the report
        names by module (block indices as ``*``) what was loaded, what was
        skipped for its shape and what the checkpoint lacks.

        Args:
            checkpoint (str): Checkpoint path or URL (anything mmengine's
                ``CheckpointLoader`` accepts).
            prefix (str, optional): Only keys under this prefix are used,
                with the prefix removed (e.g. 'backbone.' for a classifier
                checkpoint). Defaults to None.
            map_location (str): Passed to ``torch.load``. Defaults to 'cpu'.

        Returns:
            dict: Lists of keys, also kept as ``self.pretrained_report``:
            ``loaded`` (same key and shape), ``seeded`` (a plain depthwise
            conv weight for a Dy-ODConv unit, which ODConv2d copies into
            every candidate), ``shape_mismatch``, ``missing`` (in the
            backbone, not in the checkpoint) and ``unexpected`` (in the
            checkpoint, not in the backbone).

        Raises:
            ValueError: No tensor of the checkpoint fits the backbone.
        """
        self._report_source = checkpoint
        try:
            PretrainedInit(
                checkpoint, prefix=prefix, map_location=map_location)(self)
        finally:
            self._report_source = None
        return self.pretrained_report

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # mmengine's and torch's loaders hand every module the whole
        # state_dict under its prefix first: the moment to see what will fit.
        if self._report_source is not None:
            source, self._report_source = self._report_source, None
            self.pretrained_report = self._report_fit(
                {
                    k[len(prefix):]: v
                    for k, v in state_dict.items() if k.startswith(prefix)
                }, source)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _seeds_candidates(self, key, value, own) -> bool:
        """Whether ``value`` is a plain conv weight that ODConv2d loads into
        each of its candidate kernels (see ``ODConv2d._load_from_state_dict``):
        the Dy-ODConv unit keeps the key of the depthwise conv it replaces."""
        module_name, _, name = key.rpartition('.')
        if name != 'weight' or not isinstance(value, torch.Tensor):
            return False
        module = self.get_submodule(module_name)
        return isinstance(module, ODConv2d) and value.dim() == 4 \
            and tuple(value.shape) == tuple(own.shape[1:])

    def _report_fit(self, state_dict: dict, source: str) -> dict:
        own = self.state_dict()
        report = dict(
            loaded=[], seeded=[], shape_mismatch=[], missing=[], unexpected=[])
        for key, value in state_dict.items():
            if key not in own:
                report['unexpected'].append(key)
            elif self._seeds_candidates(key, value, own[key]):
                report['seeded'].append(key)
            elif not isinstance(value, torch.Tensor) or \
                    value.shape != own[key].shape:
                report['shape_mismatch'].append(
                    f'{key}: checkpoint {tuple(getattr(value, "shape", ()))}'
                    f' vs model {tuple(own[key].shape)}')
            else:
                report['loaded'].append(key)
        report['missing'] = [k for k in own if k not in state_dict]
        fitting = len(report['loaded']) + len(report['seeded'])
        if not fitting:
            hint = ''
            if any(k.startswith('backbone.') for k in state_dict):
                hint = " (its keys start with 'backbone.': set prefix=" \
                       "'backbone.' in the Pretrained init_cfg)"
            raise ValueError(f'EfficientNetDSP: no tensor of checkpoint '
                             f'{source} fits the backbone{hint}')

        lines = [
            f'EfficientNetDSP: loaded {fitting} of {len(own)} tensors from '
            f'{source}'
        ]
        for name, title in (
            ('loaded', 'loaded'),
            ('seeded', 'plain depthwise weight copied into every ODConv '
             'candidate kernel'),
            ('shape_mismatch', 'skipped, shape mismatch'),
            ('missing', 'not in the checkpoint, kept the initialisation'),
            ('unexpected', 'in the checkpoint only, ignored')):
            keys = report[name]
            if not keys:
                continue
            lines.append(f'  {title} ({len(keys)} tensors):')
            if name == 'shape_mismatch':
                lines.extend(f'    {k}' for k in keys)
            else:
                lines.extend(f'    {module} ({n})'
                             for module, n in _by_module(keys).items())
        partial = any(report[name] for name in report if name != 'loaded')
        level = logging.WARNING if partial else logging.INFO
        print_log('\n'.join(lines), logger='current', level=level)
        return report


def _by_module(keys) -> Counter:
    """Tensor counts per module, two levels deep inside a block, whose index
    is written ``*``: ``layers.4.*.expand_conv.conv`` stands for the expand
    convs of all blocks of stage 4."""
    groups = Counter()
    for key in keys:
        parts = re.sub(r'^(layers\.\d+\.)\d+\.', r'\1*.', key).split('.')
        depth = 5 if parts[2:3] == ['*'] else 3
        groups['.'.join(parts[:-1][:depth])] += 1
    return groups
