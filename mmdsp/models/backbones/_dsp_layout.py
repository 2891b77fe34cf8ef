"""Argument parsing of :class:`EfficientNetDSP` (private): the DSP options
checked against the arch table, with no side effect on the backbone."""
import copy
import numbers
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmengine.registry import MODELS as MMENGINE_MODELS

# Block kinds of MMPretrain's EfficientNetV2 arch tables (last column).
_KIND_OF_ROW = {-1: 'conv', 0: 'fused', 1: 'mbconv'}

KIND_NAMES = dict(
    conv='plain conv', fused='Fused-MBConv', mbconv='MBConv', dy='Dy-MBConv')


class InvalidArchError(ValueError, AssertionError):
    """An ``arch`` that is not in the arch table.

    EfficientNetV2 asserts its ``arch``; this is an ``AssertionError`` for
    code written against it, and a ``ValueError`` as for every other bad
    argument of EfficientNetDSP.
    """


class DSPLayout(NamedTuple):
    """The checked DSP options of an EfficientNetDSP.

    Block stages are indices into the backbone's ``layers`` (1 .. number of
    arch rows - 1); the kinds are 'conv', 'fused', 'mbconv' and 'dy'
    (Dy-MBConv).

    Args:
        arch_kinds (dict[int, str]): Block kind of each stage in the arch
            table.
        block_kinds (dict[int, str]): Block kind of each stage as built.
        dy_stages (tuple[int]): The stages built as Dy-MBConv, sorted.
        dy_cfg (dict | None): Dy-ODConv unit config (``type`` filled in), or
            None when no stage is Dy-MBConv and none was given.
        attention_cfg (dict | None): Attention config, or None.
        attention_stages (list[int]): The stages that get the attention.
        dropblock_cfg (dict | None): DyDropBlock config without ``stages``
            (``type`` filled in), or None.
        dropblock_stages (list[int]): The stages whose blocks get one.
    """
    arch_kinds: Dict[int, str]
    block_kinds: Dict[int, str]
    dy_stages: Tuple[int, ...]
    dy_cfg: Optional[dict]
    attention_cfg: Optional[dict]
    attention_stages: List[int]
    dropblock_cfg: Optional[dict]
    dropblock_stages: List[int]


def parse_dsp_args(arch: str, arch_settings: dict,
                   attention_cfg: Optional[dict],
                   attention_stages: Optional[Sequence[int]],
                   dy_stages: Sequence[int], dy_cfg: Optional[dict],
                   dropblock_cfg: Optional[dict]) -> DSPLayout:
    """Check the DSP arguments of EfficientNetDSP against its arch table.

    Args:
        arch (str): A key of ``arch_settings``.
        arch_settings (dict): ``EfficientNetV2.arch_settings`` (or a
            subclass's).
        attention_cfg, attention_stages, dy_stages, dy_cfg, dropblock_cfg:
            The arguments of :class:`EfficientNetDSP`, not modified.

    Returns:
        DSPLayout: The options, deep-copied.

    Raises:
        InvalidArchError: ``arch`` is not in ``arch_settings``.
        TypeError, KeyError, ValueError: An option is malformed; the message
            names its key and, for stage indices, lists the arch's stages.
    """
    if arch not in arch_settings:
        raise InvalidArchError(f'EfficientNetDSP: arch={arch!r} is not one '
                               f'of {sorted(arch_settings)}')
    arch_kinds = {
        stage: _KIND_OF_ROW[row[-1]]
        for stage, row in enumerate(arch_settings[arch][:-1], start=1)
    }
    dy_stages = tuple(
        _check_stages('dy_stages', dy_stages, arch, arch_kinds,
                      ('fused', 'mbconv'), none_ok=False))
    block_kinds = {**arch_kinds, **{stage: 'dy' for stage in dy_stages}}
    dy_cfg = _parse_dy_cfg(dy_cfg, bool(dy_stages))

    if attention_cfg is not None:
        _check_type(attention_cfg, 'attention_cfg')
        if 'in_channels' in attention_cfg:
            raise ValueError(
                'EfficientNetDSP: attention_cfg must not set in_channels; '
                "it is each block's expanded width")
        attention_cfg = copy.deepcopy(attention_cfg)
    if attention_stages is None:
        # Where EfficientNetV2 has its SE layers.
        attention_stages = [i for i, k in arch_kinds.items() if k == 'mbconv']
    attention_stages = _check_stages('attention_stages', attention_stages,
                                     arch, block_kinds, ('mbconv', 'dy'))

    dropblock_stages = []
    if dropblock_cfg is not None:
        dropblock_cfg, dropblock_stages = _parse_dropblock_cfg(
            dropblock_cfg, arch, block_kinds)
    return DSPLayout(
        arch_kinds=arch_kinds,
        block_kinds=block_kinds,
        dy_stages=dy_stages,
        dy_cfg=dy_cfg,
        attention_cfg=attention_cfg,
        attention_stages=attention_stages,
        dropblock_cfg=dropblock_cfg,
        dropblock_stages=dropblock_stages)


def _describe_stages(arch: str, kinds: Dict[int, str]) -> str:
    listing = ', '.join(f'{i}: {KIND_NAMES[k]}' for i, k in kinds.items())
    return f'the block stages of arch {arch!r} are {{{listing}}}'


def _check_stages(key, stages, arch, kinds, allowed,
                  none_ok=True) -> List[int]:
    """Sorted unique stage indices, each of a kind in ``allowed``."""
    if isinstance(stages, (int, str)) or not isinstance(stages, Sequence):
        raise TypeError(f'EfficientNetDSP: {key} must be a sequence of stage '
                        f'indices{" or None" if none_ok else ""}, got '
                        f'{stages!r}')
    for stage in stages:
        is_index = isinstance(stage, numbers.Integral) and not isinstance(
            stage, bool)
        if not is_index or kinds.get(stage) not in allowed:
            raise ValueError(
                f'EfficientNetDSP: {key} contains {stage!r}, which is not a '
                f'{" / ".join(KIND_NAMES[a] for a in allowed)} stage; ' +
                _describe_stages(arch, kinds))
    return sorted(set(stages))


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


def _parse_dy_cfg(cfg, used):
    if not used:
        return None if cfg is None else copy.deepcopy(cfg)
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise TypeError(f'EfficientNetDSP: dy_cfg must be a dict, got {cfg!r}')
    cfg = dict(copy.deepcopy(cfg))
    cfg.setdefault('type', 'DyODConv')
    _check_type(cfg, 'dy_cfg')
    fixed = {'in_channels', 'out_channels', 'kernel_size', 'stride',
             'groups'} & set(cfg)
    if fixed:
        raise ValueError(f'EfficientNetDSP: dy_cfg must not set '
                         f'{sorted(fixed)}; they follow the arch table')
    return cfg


def _parse_dropblock_cfg(cfg, arch, block_kinds):
    if not isinstance(cfg, dict):
        raise TypeError(f'EfficientNetDSP: dropblock_cfg must be a dict or '
                        f'None, got {cfg!r}')
    cfg = dict(copy.deepcopy(cfg))
    cfg.setdefault('type', 'DyDropBlock')
    _check_type(cfg, 'dropblock_cfg')
    for key in ('start', 'final'):
        value = cfg.get(key, 0. if key == 'start' else None)
        if not isinstance(value, numbers.Real) or isinstance(
                value, bool) or not 0 <= value < 1:
            raise ValueError(
                f'EfficientNetDSP: dropblock_cfg.{key} must be a probability '
                f'in [0, 1), got {value!r}')
    if 'drop_prob' in cfg:
        raise ValueError(
            'EfficientNetDSP: dropblock_cfg takes start and final (eq. 8), '
            'not drop_prob; the per-block rate follows the schedule')
    stages = cfg.pop('stages', None)
    if stages is None:
        stages = [i for i, k in block_kinds.items() if k in ('mbconv', 'dy')]
    else:
        stages = _check_stages('dropblock_cfg.stages', stages, arch,
                               block_kinds, ('fused', 'mbconv', 'dy'))
    return cfg, stages
