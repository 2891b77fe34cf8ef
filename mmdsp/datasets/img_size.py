"""One input size for every pipeline of a config: the root key ``img_size``.

mmengine reads a config's variables when the file is parsed, so a child config
(or ``--cfg-options``) that changes a base's ``img_size`` would not reach the
``Resize`` steps the base already wrote into three pipelines. mmdsp makes the
root key ``img_size`` authoritative instead: :class:`ImgSizeHook` (declared in
``configs/_base_/default_runtime.py``) sets every ``Resize`` of the built
train/val/test datasets to it before the run starts, under any tool that
builds a Runner (ours, MMPretrain's, ``Runner.from_cfg``), and
:func:`apply_img_size` does the same to a config for code that builds a
pipeline itself (``mmdsp.apis``).
"""
from typing import Any, Iterator, Optional

__all__ = ['apply_img_size', 'set_dataset_img_size', 'RESIZE_TYPES']

# Steps whose ``scale`` is the network's input side.
RESIZE_TYPES = ('Resize', 'mmpretrain.Resize', 'mmcv.Resize')
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _check(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f'img_size must be an int of at least 8 pixels, '
                         f'got {size!r}')
    return size


def _dataset_cfgs(dataset: dict) -> Iterator[dict]:
    """A dataset config and those it wraps (Concat/Repeat/ClassBalanced)."""
    yield dataset
    inner = dataset.get('datasets', [])
    if 'dataset' in dataset:
        inner = [dataset['dataset']]
    for d in inner:
        if isinstance(d, dict):
            yield from _dataset_cfgs(d)


def apply_img_size(cfg, size: Optional[int] = None):
    """Set every ``Resize`` of the config's dataloaders to ``img_size``.

    Args:
        cfg (mmengine.Config | dict): Modified in place.
        size (int, optional): Defaults to ``cfg['img_size']``; when neither
            is set, nothing changes.

    Returns:
        The same ``cfg``.
    """
    size = size if size is not None else cfg.get('img_size')
    if size is None:
        return cfg
    _check(size)
    for name in _LOADERS:
        loader = cfg.get(name) or {}
        for dataset in _dataset_cfgs(loader.get('dataset') or {}):
            for step in dataset.get('pipeline') or []:
                if isinstance(step, dict) and step.get('type') in RESIZE_TYPES:
                    step['scale'] = (size, size)
    return cfg


def _datasets(dataset: Any) -> Iterator[Any]:
    yield dataset
    for d in getattr(dataset, 'datasets', []):
        yield from _datasets(d)
    if hasattr(dataset, 'dataset'):
        yield from _datasets(dataset.dataset)


def _transforms(transforms) -> Iterator[Any]:
    for t in transforms:
        yield t
        # RandomApply / RandomChoice hold transforms of their own.
        yield from _transforms(getattr(t, 'transforms', []) or [])


def set_dataset_img_size(dataset, size: int) -> int:
    """Set every ``Resize`` step of a built dataset's pipeline to ``size``.

    Args:
        dataset: A built dataset (wrappers are followed).
        size (int): The input side in pixels.

    Returns:
        int: How many steps were set.
    """
    _check(size)
    count = 0
    for ds in _datasets(dataset):
        pipeline = getattr(ds, 'pipeline', None)
        for t in _transforms(getattr(pipeline, 'transforms', []) or []):
            if type(t).__name__ == 'Resize' and hasattr(t, 'scale'):
                t.scale = (size, size)
                count += 1
    return count
