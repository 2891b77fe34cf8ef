"""Run MMPretrain's own command-line tools with mmdsp registered.

MMPretrain ships its ``tools/`` scripts inside the wheel (``mmpretrain/.mim``).
Our ``tools/*.py`` are thin wrappers around them rather than copies, so users
get exactly MMPretrain's arguments and behaviour plus mmdsp's modules.
"""
import importlib.util
import os.path as osp
import sys

import mmpretrain

__all__ = ['mmpretrain_tool_path', 'run_mmpretrain_tool', 'fix_dataloaders']


def mmpretrain_tool_path(name):
    """Path of a script under MMPretrain's packaged ``tools/`` folder.

    Args:
        name (str): Path relative to ``tools/``, e.g. ``'train.py'`` or
            ``'analysis_tools/get_flops.py'``.
    """
    path = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'MMPretrain tool {name!r} not found at {path}; is mmpretrain '
            '1.2.0 installed from its wheel?')
    return path


def fix_dataloaders(cfg):
    """Make the dataloader settings that MMPretrain's tools force consistent.

    ``tools/train.py`` and ``tools/test.py`` default ``persistent_workers`` to
    True, which torch refuses with ``num_workers=0`` (the natural choice for a
    quick CPU run, e.g. ``--cfg-options train_dataloader.num_workers=0``).

    Args:
        cfg (mmengine.Config): The merged config, modified in place.

    Returns:
        mmengine.Config: ``cfg``.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
    return cfg


def run_mmpretrain_tool(name):
    """Run one of MMPretrain's tools (its ``main()``) with mmdsp imported.

    Tools that build configs (``train.py``, ``test.py``) get
    :func:`fix_dataloaders` applied after their own argument merge.

    Args:
        name (str): Path relative to MMPretrain's ``tools/`` folder.
    """
    import mmdsp  # noqa: F401  (registers modules and applies compat)
    path = mmpretrain_tool_path(name)
    sys.argv[0] = path
    spec = importlib.util.spec_from_file_location('__mmpretrain_tool__', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    merge_args = getattr(module, 'merge_args', None)
    if merge_args is not None:
        module.merge_args = lambda cfg, args: fix_dataloaders(
            merge_args(cfg, args))
    module.main()
