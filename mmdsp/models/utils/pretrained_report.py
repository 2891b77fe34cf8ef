"""A report on what a ``Pretrained`` init loaded, beside mmengine's loading.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and logs every key
that does not match. A backbone that changes some blocks of a published one
(EfficientNet-DSP from an EfficientNetV2 checkpoint) needs two things more:
an error when no tensor fits, since a forgotten ``prefix='backbone.'`` would
otherwise train from scratch without a word, and a summary by module of what
was loaded and what kept its initialisation. :func:`reporting_loads` adds
both around mmengine's loading and leaves the loading itself to mmengine.
"""
import contextlib
import logging
import re
from collections import Counter
from typing import List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit

from ..layers.odconv import ODConv2d

__all__ = [
    'split_pretrained', 'fit_report', 'reporting_loads', 'load_pretrained',
    'by_module'
]

# The report's key lists, in the order and with the titles of the log.
_SECTIONS = dict(
    loaded='loaded',
    seeded='plain depthwise weight copied into every ODConv candidate kernel',
    shape_mismatch='skipped, shape mismatch',
    missing='not in the checkpoint, kept the initialisation',
    unexpected='in the checkpoint only, ignored')


def split_pretrained(init_cfg) -> Tuple[List[dict], List[dict]]:
    """The other entries and the ``Pretrained`` entries of an ``init_cfg``
    (a dict, a list of dicts or None), each in the order mmengine runs
    them."""
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg or [])
    pretrained = [
        c for c in cfgs if c.get('type') in ('Pretrained', PretrainedInit)
    ]
    return [c for c in cfgs if c not in pretrained], pretrained


def _seeds_candidates(module, key: str, value, own: torch.Tensor) -> bool:
    """Whether ``value`` is a plain conv weight that an ODConv2d loads into
    each of its candidate kernels (``ODConv2d._load_from_state_dict``)."""
    module_name, _, name = key.rpartition('.')
    if name != 'weight' or not isinstance(value, torch.Tensor):
        return False
    return isinstance(module.get_submodule(module_name), ODConv2d) \
        and value.dim() == 4 and tuple(value.shape) == tuple(own.shape[1:])


def fit_report(module: torch.nn.Module, state_dict: dict) -> dict:
    """Sort the keys of ``state_dict`` by how they load into ``module``.

    Args:
        module (nn.Module): The module loaded into.
        state_dict (dict): The tensors to load, keys relative to ``module``.

    Returns:
        dict: Lists of keys: ``loaded`` (same key and shape), ``seeded`` (a
        plain depthwise conv weight for an ODConv2d, which copies it into
        every candidate), ``shape_mismatch`` (``'key: checkpoint (...) vs
        model (...)'``), ``missing`` (in the module, not in ``state_dict``)
        and ``unexpected`` (in ``state_dict`` only).
    """
    own = module.state_dict()
    report = {name: [] for name in _SECTIONS}
    for key, value in state_dict.items():
        if key not in own:
            report['unexpected'].append(key)
        elif _seeds_candidates(module, key, value, own[key]):
            report['seeded'].append(key)
        elif not isinstance(value, torch.Tensor) or \
                value.shape != own[key].shape:
            report['shape_mismatch'].append(
                f'{key}: checkpoint {tuple(getattr(value, "shape", ()))}'
                f' vs model {tuple(own[key].shape)}')
        else:
            report['loaded'].append(key)
    report['missing'] = [k for k in own if k not in state_dict]
    return report


def _log_report(report: dict, state_dict: dict, owner: str,
                source: str) -> None:
    fitting = len(report['loaded']) + len(report['seeded'])
    # Every key of the module is loaded, seeded, mismatched or missing.
    total = sum(len(keys) for name, keys in report.items()
                if name != 'unexpected')
    if not fitting:
        hint = ''
        if any(k.startswith('backbone.') for k in state_dict):
            hint = " (its keys start with 'backbone.': set prefix=" \
                   "'backbone.' in the Pretrained init_cfg)"
        raise ValueError(f'{owner}: no tensor of checkpoint {source} fits '
                         f'the model{hint}')
    lines = [f'{owner}: loaded {fitting} of {total} tensors from {source}']
    for name, title in _SECTIONS.items():
        keys = report[name]
        if not keys:
            continue
        lines.append(f'  {title} ({len(keys)} tensors):')
        if name == 'shape_mismatch':
            lines.extend(f'    {k}' for k in keys)
        else:
            lines.extend(f'    {module} ({n})'
                         for module, n in by_module(keys).items())
    partial = any(report[name] for name in report if name != 'loaded')
    print_log(
        '\n'.join(lines),
        logger='current',
        level=logging.WARNING if partial else logging.INFO)


@contextlib.contextmanager
def reporting_loads(module: torch.nn.Module, sources: List[str]):
    """Report on every state_dict load of ``module`` inside the block.

    Each load is sorted by :func:`fit_report` and logged, before any tensor
    is copied; a load of which nothing fits raises ``ValueError`` (hinting at
    ``prefix='backbone.'`` when the keys start with it). The last report is
    kept as ``module.pretrained_report``.

    Args:
        module (nn.Module): The module loaded into, e.g. by mmengine's
            ``PretrainedInit`` or ``BaseModule.init_weights``.
        sources (list[str]): The checkpoints of the loads, in order, as
            named in the log.

    Yields:
        list[dict]: The reports, one per load, filled as the loads happen.
    """
    reports, pending = [], list(sources)
    owner = type(module).__name__

    def report_load(mod, state_dict, prefix, *args):
        # mmengine's and torch's loaders hand the module the whole
        # state_dict under its prefix before copying any tensor: the moment
        # to see what will fit, and to stop if nothing does.
        state_dict = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        report = fit_report(mod, state_dict)
        source = pending.pop(0) if pending else 'a state_dict'
        _log_report(report, state_dict, owner, source)
        reports.append(report)

    handle = module.register_load_state_dict_pre_hook(report_load)
    try:
        yield reports
    finally:
        handle.remove()
        if reports:
            module.pretrained_report = reports[-1]


def load_pretrained(module: torch.nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    map_location: str = 'cpu') -> dict:
    """Load what fits of a checkpoint with mmengine's ``PretrainedInit`` and
    report it (see :func:`reporting_loads`).

    Args:
        module (nn.Module): The module to load into.
        checkpoint (str): Path or URL (anything mmengine's
            ``CheckpointLoader`` accepts).
        prefix (str, optional): Only keys under this prefix are used, with
            the prefix removed (e.g. 'backbone.'). Defaults to None.
        map_location (str): Passed to ``torch.load``. Defaults to 'cpu'.

    Returns:
        dict: The report of :func:`fit_report`.
    """
    with reporting_loads(module, [checkpoint]) as reports:
        PretrainedInit(
            checkpoint, prefix=prefix, map_location=map_location)(module)
    return reports[-1]


def by_module(keys) -> Counter:
    """Tensor counts per module, two levels deep inside a block, whose index
    is written ``*``: ``layers.4.*.expand_conv.conv`` stands for the expand
    convs of all blocks of stage 4."""
    groups = Counter()
    for key in keys:
        parts = re.sub(r'^(layers\.\d+\.)\d+\.', r'\1*.', key).split('.')
        depth = 5 if parts[2:3] == ['*'] else 3
        groups['.'.join(parts[:-1][:depth])] += 1
    return groups
