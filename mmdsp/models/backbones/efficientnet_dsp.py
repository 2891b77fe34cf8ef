"""EfficientNet-DSP backbone (paper sections 2 and 3.2-3.4, table 2).

The layout (the paper's fig. 2 is not available to us) and the reasons for it
are documented in ``docs/architecture.md``.
"""
import copy
import logging
import math
import numbers
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import Sequential
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_with_prefix)
from mmpretrain.models.backbones import EfficientNetV2
from mmpretrain.models.backbones.efficientnet import EdgeResidual
from mmpretrain.models.utils import InvertedResidual
from mmpretrain.registry import MODELS

from .. import layers  # noqa: F401  (registers the DSP bricks)
from ..layers.dydropblock import depth_schedule
from ..layers.odconv import ODConv2d

# Block kinds of MMPretrain's EfficientNetV2 arch tables (last column).
_ENHANCED_CONV, _FUSED, _MBCONV = -1, 0, 1


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
    """MBConv with a pluggable attention, an optional Dy-ODConv depthwise
    unit (Dy-MBConv) and an optional DyDropBlock on its output.

    The state_dict layout is MMPretrain's ``InvertedResidual``: the attention
    is stored as ``se`` (the slot and forward of the parent are reused, so an
    ``SE`` attention has exactly MMPretrain's keys) and the Dy-ODConv unit as
    ``depthwise_conv`` (its ``bn`` keys then still load from an EfficientNetV2
    checkpoint).

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
        dy_cfg (dict, optional): Config of the unit that replaces the
            depthwise ConvModule, complete except for the channels, kernel
            size, stride and groups filled in here (type ``DyODConv``). None
            keeps the plain depthwise ConvModule. Defaults to None.
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
                 dy_cfg: Optional[dict] = None,
                 dropblock_cfg: Optional[dict] = None,
                 where: str = 'an MBConv block',
                 **kwargs):
        if 'se_cfg' in kwargs:
            raise TypeError('MBConvDSP takes attention_cfg, not se_cfg')
        super().__init__(
            in_channels,
            out_channels,
            mid_channels,
            kernel_size=kernel_size,
            stride=stride,
            se_cfg=None,
            **kwargs)
        if dy_cfg is not None:
            dy_cfg = dict(
                dy_cfg,
                in_channels=mid_channels,
                out_channels=mid_channels,
                kernel_size=kernel_size,
                stride=stride,
                groups=mid_channels)
            # Assigning to the existing attribute keeps its place in the
            # module order, hence MMPretrain's parameter order.
            self.depthwise_conv = _build_brick(dy_cfg, 'dy_cfg', where)
        if attention_cfg is not None:
            self.with_se = True
            self.se = _build_brick(attention_cfg, 'attention_cfg', where)
            # Re-register linear_conv after the attention so that modules,
            # parameters and state_dict keys come in MMPretrain's order
            # (expand, depthwise, se, linear), as optimizers and checkpoint
            # tools see them.
            linear_conv = self.linear_conv
            del self.linear_conv
            self.linear_conv = linear_conv
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

    Dy-MBConv is MBConv (expand 1x1, depthwise, attention, project 1x1) whose
    depthwise ConvModule is the Dy-ODConv unit (ODConv2d -> norm -> DyReLU).

    DyDropBlock (section 3.3) follows the output of every block of the
    stages in ``dropblock_cfg['stages']``, with the rate of eq. 8 for the
    block's depth: ``p_n = start + (final - start) * n / depth`` where ``n``
    (1-based) counts the blocks of all block stages and ``depth`` is their
    total, so a block's rate does not depend on which stages carry one.

    With ``attention_cfg=dict(type='SE')``, ``dy_stages=()`` and
    ``dropblock_cfg=None`` the network is exactly ``EfficientNetV2(arch)``:
    same state_dict and outputs.

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
            ``norm_eval``, ``with_cp``, ``init_cfg``). A ``Pretrained``
            ``init_cfg`` loads every checkpoint tensor whose key and shape
            fit and logs the rest (see :meth:`init_weights`).
    """

    def __init__(self,
                 arch: str = 's',
                 attention_cfg: Optional[dict] = dict(type='SAR'),
                 attention_stages: Optional[Sequence[int]] = None,
                 dy_stages: Sequence[int] = (2, 3),
                 dy_cfg: Optional[dict] = dict(kernel_num=4),
                 dropblock_cfg: Optional[dict] = dict(
                     start=0., final=0.1, block_size=7),
                 **kwargs):
        if arch not in self.arch_settings:
            raise ValueError(
                f'EfficientNetDSP: arch={arch!r} is not one of '
                f'{sorted(self.arch_settings)}')
        # make_layers() runs inside EfficientNetV2.__init__ and needs the
        # parsed DSP options, so they are set (as plain attributes) first.
        arch_rows = self.arch_settings[arch]
        self.block_kinds = self._parse_block_kinds(arch, arch_rows, dy_stages)
        self.dy_stages = tuple(sorted(set(dy_stages)))
        self.dy_cfg = self._parse_dy_cfg(dy_cfg)
        self.attention_cfg = self._parse_attention_cfg(attention_cfg)
        if attention_stages is None:
            # Where EfficientNetV2 has its SE layers.
            attention_stages = [
                i for i, k in self.arch_kinds.items() if k == 'mbconv'
            ]
        self.attention_stages = self._parse_stages(
            'attention_stages', attention_stages, arch, allowed=('mbconv',
                                                                 'dy'))
        self.dropblock_cfg, self.dropblock_stages = self._parse_dropblock_cfg(
            dropblock_cfg, arch)
        self.dropblock_rates: Dict[tuple, float] = {}
        super().__init__(arch=arch, **kwargs)

    # ------------------------------------------------------------------
    # argument parsing
    # ------------------------------------------------------------------
    # The paper's SAR group count (section 3.2; SAR's default).
    SAR_GROUPS = 64

    _KIND_NAMES = dict(
        conv='plain conv',
        fused='Fused-MBConv',
        mbconv='MBConv',
        dy='Dy-MBConv')

    def _describe_stages(self, arch: str) -> str:
        listing = ', '.join(f'{i}: {self._KIND_NAMES[k]}'
                            for i, k in self.block_kinds.items())
        return f'the block stages of arch {arch!r} are {{{listing}}}'

    @staticmethod
    def _is_index(value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(
            value, bool)

    def _parse_block_kinds(self, arch, arch_rows, dy_stages) -> Dict[int, str]:
        kind_of = {_ENHANCED_CONV: 'conv', _FUSED: 'fused', _MBCONV: 'mbconv'}
        self.arch_kinds = {
            stage: kind_of[row[-1]]
            for stage, row in enumerate(arch_rows[:-1], start=1)
        }
        self.block_kinds = self.arch_kinds  # for _describe_stages
        if isinstance(dy_stages, (int, str)) or not isinstance(
                dy_stages, Sequence):
            raise TypeError(
                f'EfficientNetDSP: dy_stages must be a sequence of stage '
                f'indices, got {dy_stages!r}')
        for stage in dy_stages:
            if not self._is_index(stage) or self.block_kinds.get(stage) \
                    not in ('fused', 'mbconv'):
                raise ValueError(
                    f'EfficientNetDSP: dy_stages contains {stage!r}, which '
                    'is not a Fused-MBConv or MBConv stage; '
                    + self._describe_stages(arch))
        kinds = dict(self.arch_kinds)
        kinds.update({stage: 'dy' for stage in dy_stages})
        return kinds

    def _parse_stages(self, key, stages, arch, allowed) -> List[int]:
        """Validate block stage indices against the (final) block kinds."""
        if stages is None:
            return [i for i, k in self.block_kinds.items() if k in allowed]
        if isinstance(stages, (int, str)) or not isinstance(stages, Sequence):
            raise TypeError(f'EfficientNetDSP: {key} must be a sequence of '
                            f'stage indices or None, got {stages!r}')
        for stage in stages:
            if not self._is_index(stage) or \
                    self.block_kinds.get(stage) not in allowed:
                raise ValueError(
                    f'EfficientNetDSP: {key} contains {stage!r}, which is '
                    f'not a {" / ".join(self._KIND_NAMES[a] for a in allowed)}'
                    ' stage; '
                    + self._describe_stages(arch))
        return sorted(set(stages))

    @staticmethod
    def _check_type(cfg, key):
        if not isinstance(cfg, dict):
            raise TypeError(
                f'EfficientNetDSP: {key} must be a dict or None, got {cfg!r}')
        brick = cfg.get('type')
        if brick is None:
            raise KeyError(f'EfficientNetDSP: {key} needs a "type" key: {cfg}')
        if isinstance(brick, str) and MMENGINE_MODELS.get(brick) is None:
            raise KeyError(
                f'EfficientNetDSP: {key}.type={brick!r} is not registered in '
                "mmengine's MODELS registry (is mmdsp imported? DSP bricks: "
                "'SE', 'SAR', 'ECA', 'CBAM', 'DyODConv', 'DyDropBlock')")

    def _parse_attention_cfg(self, cfg):
        if cfg is None:
            return None
        self._check_type(cfg, 'attention_cfg')
        if 'in_channels' in cfg:
            raise ValueError(
                'EfficientNetDSP: attention_cfg must not set in_channels; '
                "it is each block's expanded width")
        return copy.deepcopy(cfg)

    def _parse_dy_cfg(self, cfg):
        if 'dy' not in self.block_kinds.values():
            return None if cfg is None else copy.deepcopy(cfg)
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise TypeError(
                f'EfficientNetDSP: dy_cfg must be a dict, got {cfg!r}')
        cfg = dict(copy.deepcopy(cfg))
        cfg.setdefault('type', 'DyODConv')
        self._check_type(cfg, 'dy_cfg')
        fixed = {'in_channels', 'out_channels', 'kernel_size', 'stride',
                 'groups'} & set(cfg)
        if fixed:
            raise ValueError(
                f'EfficientNetDSP: dy_cfg must not set {sorted(fixed)}; '
                'they follow the arch table')
        return cfg

    def _parse_dropblock_cfg(self, cfg, arch):
        if cfg is None:
            return None, []
        if not isinstance(cfg, dict):
            raise TypeError(f'EfficientNetDSP: dropblock_cfg must be a dict '
                            f'or None, got {cfg!r}')
        cfg = dict(copy.deepcopy(cfg))
        cfg.setdefault('type', 'DyDropBlock')
        self._check_type(cfg, 'dropblock_cfg')
        for key in ('start', 'final'):
            value = cfg.get(key, 0. if key == 'start' else None)
            if not isinstance(value, numbers.Real) or isinstance(
                    value, bool) or not 0 <= value < 1:
                raise ValueError(
                    f'EfficientNetDSP: dropblock_cfg.{key} must be a '
                    f'probability in [0, 1), got {value!r}')
        if 'drop_prob' in cfg:
            raise ValueError(
                'EfficientNetDSP: dropblock_cfg takes start and final (eq. 8)'
                ', not drop_prob; the per-block rate follows the schedule')
        stages = cfg.pop('stages', None)
        if stages is None:
            stages = [
                i for i, k in self.block_kinds.items()
                if k in ('mbconv', 'dy')
            ]
        else:
            stages = self._parse_stages(
                'dropblock_cfg.stages',
                stages,
                arch,
                allowed=('fused', 'mbconv', 'dy'))
        return cfg, stages

    # ------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------
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
                else:
                    dy_cfg = None
                    if kind == 'dy':
                        dy_cfg = dict(self.dy_cfg)
                        dy_cfg.setdefault('norm_cfg', self.norm_cfg)
                    blocks.append(
                        MBConvDSP(
                            attention_cfg=self._block_attention_cfg(
                                stage, mid_channels, expand_ratio, se_ratio),
                            dy_cfg=dy_cfg,
                            **common))
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
    # pretrained loading
    # ------------------------------------------------------------------
    def init_weights(self):
        """Initialise, loading a ``Pretrained`` ``init_cfg`` partially.

        Non-pretrained entries of ``init_cfg`` (or, if there are none,
        EfficientNetV2's default Kaiming / constant init) initialise every
        weight first; then each tensor of the checkpoint whose key and shape
        match this backbone is copied in. Keys skipped for a shape mismatch,
        keys of the backbone the checkpoint lacks and checkpoint keys the
        backbone lacks are logged, and kept in ``self.pretrained_report``.
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
        others = [c for c in init_cfgs if c not in pretrained]
        if not others:
            others = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1)
            ]
        original = self.init_cfg
        self.init_cfg = others
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        for cfg in pretrained:
            self.pretrained_report = self.load_fitting_weights(
                cfg['checkpoint'],
                prefix=cfg.get('prefix'),
                map_location=cfg.get('map_location', 'cpu'))

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

    def load_fitting_weights(self,
                             checkpoint: str,
                             prefix: Optional[str] = None,
                             map_location: str = 'cpu') -> dict:
        """Load every tensor of a checkpoint that fits (same key and shape).

        Args:
            checkpoint (str): Checkpoint path or URL (anything mmengine's
                ``CheckpointLoader`` accepts).
            prefix (str, optional): Only keys under this prefix are used,
                with the prefix removed (e.g. 'backbone.' for a classifier
                checkpoint). Defaults to None.
            map_location (str): Passed to ``torch.load``. Defaults to 'cpu'.

        Returns:
            dict: Lists of keys: ``loaded`` (same key and shape), ``seeded``
            (a plain depthwise conv weight for a Dy-ODConv unit, which
            ODConv2d copies into every candidate), ``shape_mismatch``,
            ``missing``
            (in the backbone, not in the checkpoint) and ``unexpected`` (in
            the checkpoint, not in the backbone).
        """
        if prefix:
            state_dict = _load_checkpoint_with_prefix(prefix, checkpoint,
                                                      map_location)
        else:
            ckpt = _load_checkpoint(checkpoint, map_location)
            if not isinstance(ckpt, dict):
                raise ValueError(f'EfficientNetDSP: no state_dict found in '
                                 f'checkpoint {checkpoint}')
            state_dict = ckpt.get('state_dict', ckpt)
            state_dict = {
                (k[len('module.'):] if k.startswith('module.') else k): v
                for k, v in state_dict.items()
            }
        own = self.state_dict()
        report = dict(
            loaded=[], seeded=[], shape_mismatch=[], missing=[], unexpected=[])
        fitting = {}
        for key, value in state_dict.items():
            if key not in own:
                report['unexpected'].append(key)
            elif self._seeds_candidates(key, value, own[key]):
                fitting[key] = value
                report['seeded'].append(key)
            elif not isinstance(value, torch.Tensor) or \
                    value.shape != own[key].shape:
                report['shape_mismatch'].append(
                    f'{key}: checkpoint {tuple(getattr(value, "shape", ()))}'
                    f' vs model {tuple(own[key].shape)}')
            else:
                fitting[key] = value
                report['loaded'].append(key)
        report['missing'] = [k for k in own if k not in state_dict]
        if not fitting:
            hint = ''
            if any(k.startswith('backbone.') for k in state_dict):
                hint = " (its keys start with 'backbone.': set prefix=" \
                       "'backbone.' in the Pretrained init_cfg)"
            raise ValueError(f'EfficientNetDSP: no tensor of checkpoint '
                             f'{checkpoint} fits the backbone{hint}')
        self.load_state_dict(fitting, strict=False)

        lines = [
            f'EfficientNetDSP: loaded {len(fitting)} of {len(own)} tensors '
            f'from {checkpoint}'
        ]
        for name, title in (('seeded', 'plain conv weight copied into every '
                             'ODConv candidate kernel'),
                            ('shape_mismatch', 'skipped, shape mismatch'),
                            ('missing', 'not in the checkpoint, kept the '
                             'initialisation'),
                            ('unexpected', 'in the checkpoint only, ignored')):
            if report[name]:
                lines.append(f'{title} ({len(report[name])}):')
                lines.extend(f'    {k}' for k in report[name])
        level = logging.WARNING if len(lines) > 1 else logging.INFO
        print_log('\n'.join(lines), logger='current', level=level)
        return report
