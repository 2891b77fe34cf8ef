"""Argument parsing of :class:`EfficientNetDSP` (private): the DSP options
checked against the arch table, with no side effect on the backbone."""
import copy
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmengine.registry import MODELS as MMENGINE_MODELS

from ...utils.checks import check_probability, is_int

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
    if dy_stages:
        dy_cfg = _brick_cfg({} if dy_cfg is None else dy_cfg, 'dy_cfg',
                            'DyODConv')
        fixed = {'in_channels', 'out_channels', 'kernel_size', 'stride',
                 'groups'} & set(dy_cfg)
        if fixed:
            raise ValueError(f'EfficientNetDSP: dy_cfg must not set '
                             f'{sorted(fixed)}; they follow the arch table')
    else:
        dy_cfg = copy.deepcopy(dy_cfg)  # unused

    if attention_cfg is not None:
        attention_cfg = _brick_cfg(attention_cfg, 'attention_cfg')
        if 'in_channels' in attention_cfg:
            raise ValueError(
                'EfficientNetDSP: attention_cfg must not set in_channels; '
                "it is each block's expanded width")
    if attention_stages is None:
        # Where EfficientNetV2 has its SE layers.
        attention_stages = [i for i, k in arch_kinds.items() if k == 'mbconv']
    attention_stages = _check_stages('attention_stages', attention_stages,
                                     arch, block_kinds, ('mbconv', 'dy'))

    dropblock_stages = []
    if dropblock_cfg is not None:
        dropblock_cfg, dropblock_stages = _parse_dropblock_cfg(
            dropblock_cfg, arch, block_kinds)
    return DSPLayout(arch_kinds, block_kinds, dy_stages, dy_cfg, attention_cfg,
                     attention_stages, dropblock_cfg, dropblock_stages)


def _check_stages(key, stages, arch, kinds, allowed,
                  none_ok=True) -> List[int]:
    """Sorted unique stage indices, each of a kind in ``allowed``."""
    if isinstance(stages, (int, str)) or not isinstance(stages, Sequence):
        raise TypeError(f'EfficientNetDSP: {key} must be a sequence of stage '
                        f'indices{" or None" if none_ok else ""}, got '
                        f'{stages!r}')
    for stage in stages:
        if not is_int(stage) or kinds.get(stage) not in allowed:
            listing = ', '.join(f'{i}: {KIND_NAMES[k]}'
                                for i, k in kinds.items())
            raise ValueError(
                f'EfficientNetDSP: {key} contains {stage!r}, which is not a '
                f'{" / ".join(KIND_NAMES[a] for a in allowed)} stage; the '
                f'block stages of arch {arch!r} are {{{listing}}}')
    return sorted(set(stages))


def _brick_cfg(cfg, key: str, default_type: Optional[str] = None) -> dict:
    """A deep copy of a brick config, its ``type`` filled in and checked to
    be registered in mmengine's root ``MODELS``."""
    if not isinstance(cfg, dict):
        raise TypeError(
            f'EfficientNetDSP: {key} must be a dict or None, got {cfg!r}')
    cfg = dict(copy.deepcopy(cfg))
    if default_type is not None:
        cfg.setdefault('type', default_type)
    brick = cfg.get('type')
    if brick is None:
        raise KeyError(f'EfficientNetDSP: {key} needs a "type" key: {cfg}')
    if isinstance(brick, str) and MMENGINE_MODELS.get(brick) is None:
        mmdsp_bricks = sorted(
            name for name, cls in MMENGINE_MODELS.module_dict.items()
            if cls.__module__.startswith('mmdsp.'))
        raise KeyError(
            f'EfficientNetDSP: {key}.type={brick!r} is not registered in '
            "mmengine's MODELS registry (is the module that registers it "
            f'imported? mmdsp registers {mmdsp_bricks})')
    return cfg


def _parse_dropblock_cfg(cfg, arch, block_kinds):
    cfg = _brick_cfg(cfg, 'dropblock_cfg', 'DyDropBlock')
    check_probability('EfficientNetDSP', 'dropblock_cfg.start',
                      cfg.get('start', 0.))
    check_probability('EfficientNetDSP', 'dropblock_cfg.final',
                      cfg.get('final'))
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
