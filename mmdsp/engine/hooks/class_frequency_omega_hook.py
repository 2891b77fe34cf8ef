"""Fills ``PolyFocalLoss(omega='auto')`` from the training set class counts."""
from typing import Optional

import numpy as np
from mmpretrain.registry import HOOKS

from mmdsp.models.losses.poly_focal_loss import (PolyFocalLoss,
                                                 class_frequency_omega)
from ._brick_hook import BrickHook


def _base_labels(dataset) -> np.ndarray:
    """Labels of a plain (non-wrapper) dataset, one entry per label."""
    name = type(dataset).__name__
    if hasattr(dataset, 'full_init') and \
            not getattr(dataset, '_fully_initialized', True):
        dataset.full_init()
    if hasattr(dataset, 'get_gt_labels'):
        labels = dataset.get_gt_labels()
        # Multi-label datasets give one array per sample.
        if len(labels) and isinstance(labels[0], (list, np.ndarray)) \
                and np.ndim(labels[0]) > 0:
            labels = np.concatenate([np.asarray(x) for x in labels] or [[]])
        return np.asarray(labels, dtype=np.int64).reshape(-1)
    data_list = getattr(dataset, 'data_list', None)
    if data_list is None and hasattr(dataset, 'get_data_info'):
        data_list = [dataset.get_data_info(i) for i in range(len(dataset))]
    if data_list is None:
        raise TypeError(
            f'ClassFrequencyOmegaHook cannot read labels from training '
            f'dataset {name}: it has neither get_gt_labels(), data_list nor '
            f'get_data_info().')
    labels = []
    for i, info in enumerate(data_list):
        if 'gt_label' not in info:
            raise KeyError(f"ClassFrequencyOmegaHook: sample {i} of training "
                           f"dataset {name} has no 'gt_label' key.")
        labels.append(np.asarray(info['gt_label'], dtype=np.int64).ravel())
    return np.concatenate(labels) if labels else np.zeros(0, np.int64)


def dataset_labels(dataset) -> np.ndarray:
    """Labels the training loop sees, through dataset wrappers.

    Wrappers that resample (``RepeatDataset``, ``ClassBalancedDataset``,
    ``torch.utils.data.Subset``) are followed index by index, so the counts
    are those of the data the loss is trained on.

    Args:
        dataset: A dataset, possibly wrapped.

    Returns:
        np.ndarray: Flat int64 array of labels.
    """
    if hasattr(dataset, 'datasets'):  # mmengine / torch ConcatDataset
        parts = [dataset_labels(d) for d in dataset.datasets]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if hasattr(dataset, 'dataset'):
        inner = dataset.dataset
        if hasattr(dataset, 'full_init') and \
                not getattr(dataset, '_fully_initialized', True):
            dataset.full_init()
        if hasattr(dataset, 'repeat_indices'):  # ClassBalancedDataset
            return _per_index_labels(inner, dataset.repeat_indices)
        if hasattr(dataset, 'indices'):  # torch Subset
            return _per_index_labels(inner, dataset.indices)
        labels = dataset_labels(inner)
        # RepeatDataset: every sample `times` times; frequencies unchanged.
        return np.tile(labels, int(getattr(dataset, 'times', 1)))
    return _base_labels(dataset)


def _per_index_labels(dataset, indices) -> np.ndarray:
    if hasattr(dataset, 'get_cat_ids'):
        parts = [
            np.asarray(dataset.get_cat_ids(int(i)), np.int64).ravel()
            for i in indices
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    # Only single-label datasets reach here: one label per sample.
    labels = dataset_labels(dataset)
    return labels[np.asarray(indices, dtype=np.int64)]


@HOOKS.register_module()
class ClassFrequencyOmegaHook(BrickHook):
    """Set the omega of every ``PolyFocalLoss(omega='auto')`` before training.

    Counts the samples of each class in ``runner.train_dataloader.dataset``
    (through ``RepeatDataset``, ``ConcatDataset``, ``ClassBalancedDataset``
    and ``Subset`` wrappers) and sets ``omega`` with
    :func:`~mmdsp.models.losses.class_frequency_omega` (normalised inverse
    class frequency, mean 1). The counts and weights are logged. On a model
    without such a loss the hook warns once and does nothing.

    Args:
        num_classes (int, optional): Number of classes. Defaults to the
            length of the dataset's ``metainfo['classes']``, else the largest
            label + 1.
        override (bool): Also overwrite losses that were given an explicit
            omega list. Defaults to False.
    """

    priority = 'NORMAL'
    brick = "PolyFocalLoss with omega='auto'"

    def __init__(self,
                 num_classes: Optional[int] = None,
                 override: bool = False):
        self.num_classes = num_classes
        self.override = override

    def is_target(self, module) -> bool:
        return isinstance(module, PolyFocalLoss) and (
            module.auto_omega or (self.override and module.omega is not None))

    def before_train(self, runner) -> None:
        losses = self.targets(runner)
        if not losses:
            return
        dataset = runner.train_dataloader.dataset
        labels = dataset_labels(dataset)
        classes = _meta_classes(dataset)
        num_classes = self.num_classes or (len(classes) if classes else None)
        if labels.size == 0:
            raise ValueError(f'ClassFrequencyOmegaHook: training dataset '
                             f'{type(dataset).__name__} has no labels.')
        if (labels < 0).any():
            raise ValueError('ClassFrequencyOmegaHook: training labels must '
                             f'be >= 0, got min {int(labels.min())}.')
        if num_classes is None:
            num_classes = int(labels.max()) + 1
        elif labels.max() >= num_classes:
            raise ValueError(
                f'ClassFrequencyOmegaHook: label {int(labels.max())} is out '
                f'of range for {num_classes} classes.')
        counts = np.bincount(labels, minlength=num_classes)
        omega = class_frequency_omega(counts)
        for loss in losses:
            loss.set_omega(omega)
        if not classes or len(classes) != num_classes:
            classes = [str(i) for i in range(num_classes)]
        table = ', '.join(f'{c}: n={int(n)} omega={w:.4f}'
                          for c, n, w in zip(classes, counts, omega.tolist()))
        runner.logger.info(f'ClassFrequencyOmegaHook set omega of '
                           f'{len(losses)} PolyFocalLoss(es) from '
                           f'{int(counts.sum())} training labels: {table}')
        if (counts == 0).any():
            runner.logger.warning(
                'ClassFrequencyOmegaHook: classes '
                f'{[classes[i] for i in np.flatnonzero(counts == 0)]} have '
                'no training sample; they get the weight of the rarest '
                'present class.')


def _meta_classes(dataset) -> Optional[list]:
    while True:
        metainfo = getattr(dataset, 'metainfo', None)
        if isinstance(metainfo, dict) and metainfo.get('classes'):
            return list(metainfo['classes'])
        if hasattr(dataset, 'datasets') and len(dataset.datasets):
            dataset = dataset.datasets[0]
        elif hasattr(dataset, 'dataset'):
            dataset = dataset.dataset
        else:
            return None
