"""Run MMPretrain's own command-line tools with mmdsp registered.

MMPretrain ships its ``tools/`` scripts inside the wheel (``mmpretrain/.mim``).
Our ``tools/*.py`` are thin wrappers around them rather than copies, so users
get exactly MMPretrain's arguments and behaviour plus mmdsp's modules.
"""
import importlib.util
import os
import os.path as osp
import sys

import mmpretrain
import torch

__all__ = [
    'mmpretrain_tool_path', 'run_mmpretrain_tool', 'fix_dataloaders',
    'check_checkpoint_fits', 'available_cores'
]


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


def available_cores():
    """CPU cores this process may run on (its affinity, not the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fix_dataloaders(cfg):
    """Fit the dataloader settings that MMPretrain's tools force to this machine.

    - ``persistent_workers``: ``tools/train.py`` and ``tools/test.py`` default
      it to True, which torch refuses with ``num_workers=0`` (the natural
      choice for a quick CPU run).
    - ``pin_memory``: they default it to True, which only helps a CUDA copy;
      without CUDA torch warns on every loader, so it is turned off.
    - ``num_workers``: capped at one less than the available cores (at least
      one), so that the loaders and the training process, which uses every
      core, do not oversubscribe a small machine; this also keeps torch's
      "suggested max number of worker" warning away.

    Args:
        cfg (mmengine.Config): The merged config, modified in place.

    Returns:
        mmengine.Config: ``cfg``.
    """
    cap = max(1, available_cores() - 1)
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if not loader:
            continue
        if loader.get('num_workers', 0) > cap:
            loader['num_workers'] = cap
        if loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
        if not torch.cuda.is_available():
            loader['pin_memory'] = False
    return cfg


def check_checkpoint_fits(cfg, checkpoint):
    """Refuse a checkpoint whose weights do not fit the config's model.

    mmengine loads test checkpoints with ``strict=False``: a checkpoint of
    another architecture is logged as a screen of size mismatches and then
    evaluated as a mostly random model. ``tools/test.py`` calls this first.

    Args:
        cfg (mmengine.Config): The merged config.
        checkpoint (str): The checkpoint file.

    Raises:
        SystemExit: With a few lines naming what does not fit.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmpretrain.registry import MODELS

    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    except FileNotFoundError:
        raise SystemExit(f'tools/test.py: checkpoint {checkpoint} not found.')
    except Exception as e:  # NotACheckpointError, UnsafeCheckpointError, ...
        raise SystemExit(f'tools/test.py: {e}')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise SystemExit(f'tools/test.py: {checkpoint} holds no state_dict.')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        model = MODELS.build(cfg.model)
    own = model.state_dict()
    wrong = [(k, tuple(state[k].shape), tuple(v.shape))
             for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if not (wrong or missing or extra):
        return
    lines = [f'tools/test.py: checkpoint {checkpoint} does not fit the model '
             f'of {cfg.filename} ({len(own)} tensors): {len(wrong)} with '
             f'other shapes, {len(missing)} missing, {len(extra)} unexpected.']
    for k, theirs, ours in wrong[:3]:
        lines.append(f'  {k}: checkpoint {list(theirs)}, model {list(ours)}')
    for k in missing[:2]:
        lines.append(f'  missing from the checkpoint: {k}')
    for k in extra[:2]:
        lines.append(f'  not in the model: {k}')
    lines.append('It was trained with another model (arch, bricks or '
                 'num_classes): pass the config it was trained with.')
    raise SystemExit('\n'.join(lines))


def _apply_img_size_when_loaded():
    """Give every config a tool loads its root ``img_size`` in all pipelines.

    Runners get it from ``ImgSizeHook``; tools that build a pipeline straight
    from the config (``vis_cam.py``, ``confusion_matrix.py``' dataset) get it
    here, after the file is read and again after ``--cfg-options`` merge.
    """
    from mmengine.config import Config

    from mmdsp.datasets.img_size import apply_img_size
    fromfile, merge = Config.fromfile, Config.merge_from_dict

    def fromfile_with_size(*args, **kwargs):
        return apply_img_size(fromfile(*args, **kwargs))

    def merge_with_size(self, *args, **kwargs):
        merge(self, *args, **kwargs)
        apply_img_size(self)

    Config.fromfile = staticmethod(fromfile_with_size)
    Config.merge_from_dict = merge_with_size


def run_mmpretrain_tool(name):
    """Run one of MMPretrain's tools (its ``main()``) with mmdsp imported.

    Tools that build configs (``train.py``, ``test.py``) get
    :func:`fix_dataloaders` applied after their own argument merge, and
    ``test.py`` refuses a checkpoint that does not fit the model
    (:func:`check_checkpoint_fits`).

    Args:
        name (str): Path relative to MMPretrain's ``tools/`` folder.
    """
    import mmdsp  # noqa: F401  (registers modules and applies compat)
    _apply_img_size_when_loaded()
    path = mmpretrain_tool_path(name)
    sys.argv[0] = path
    spec = importlib.util.spec_from_file_location('__mmpretrain_tool__', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    merge_args = getattr(module, 'merge_args', None)
    if merge_args is not None:

        def fixed_merge_args(cfg, args):
            cfg = fix_dataloaders(merge_args(cfg, args))
            if name == 'test.py':
                check_checkpoint_fits(cfg, args.checkpoint)
            return cfg

        module.merge_args = fixed_merge_args
    module.main()
