"""Stratified splitting that keeps groups of duplicate images on one side.

:func:`mmdsp.datasets.duplicates.find_duplicates` groups the images;
:func:`grouped_stratified_split` then assigns whole groups to train, val or
test, as close to the requested ratios per class as the groups allow
(docs/dataset.md).
"""
from typing import Optional, Sequence

import numpy as np

__all__ = ['split_targets', 'grouped_stratified_split']


def split_targets(class_counts: Sequence[int],
                  ratios: Sequence[float]) -> np.ndarray:
    """Per-class image counts of each split, by largest remainder.

    Args:
        class_counts (Sequence[int]): Number of images of each class.
        ratios (Sequence[float]): Relative split sizes, e.g. ``(7, 2, 1)``.

    Returns:
        np.ndarray: ``(num_splits, num_classes)`` integer targets whose
        columns sum to ``class_counts``.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) == 0 or (r < 0).any() or r.sum() <= 0:
        raise ValueError(f'ratios must be non-negative with a positive sum, '
                         f'got {list(ratios)}')
    r = r / r.sum()
    targets = np.zeros((len(r), len(class_counts)), dtype=np.int64)
    for c, n in enumerate(class_counts):
        exact = r * n
        t = np.floor(exact).astype(np.int64)
        # Ties go to the earlier (usually larger) split; rounding keeps
        # float noise (8 * 0.7 vs 8 * 0.2) from breaking them.
        remainder = np.round(exact - t, 9)
        rest = np.argsort(-remainder, kind='stable')[:n - t.sum()]
        t[rest] += 1
        targets[:, c] = t
    return targets


def grouped_stratified_split(labels: Sequence[int],
                             group_ids: Sequence[int],
                             ratios: Sequence[float],
                             seed: int = 0,
                             num_classes: Optional[int] = None) -> np.ndarray:
    """Assign every item to a split, keeping each group on one side.

    Groups are visited largest first (random order among equal sizes, from
    ``seed``). Each goes to a split drawn at random in proportion to the room
    it finds there, ``sum_c n_c * max(target[s, c] - taken[s, c], 0)`` over
    the classes ``c`` in the group, so groups spread over all splits; only
    when no split has room does it go where it overshoots least. Singletons
    come last and fill the quotas exactly, so with few duplicates every class
    is split as close to ``ratios`` as rounding allows.

    Args:
        labels (Sequence[int]): Class index of each item.
        group_ids (Sequence[int]): Group of each item; items sharing an id
            always land in the same split.
        ratios (Sequence[float]): Relative split sizes; a zero ratio gets no
            item.
        seed (int): Seed of the random order. Defaults to 0.
        num_classes (int, optional): Defaults to ``max(labels) + 1``.

    Returns:
        np.ndarray: Split index of each item.
    """
    labels = np.asarray(labels, dtype=np.int64)
    group_ids = np.asarray(group_ids)
    if labels.shape != group_ids.shape:
        raise ValueError(f'{len(labels)} labels but {len(group_ids)} '
                         'group ids')
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    if labels.min() < 0:
        raise ValueError(f'negative label {labels.min()}')
    num_classes = num_classes or int(labels.max()) + 1
    targets = split_targets(
        np.bincount(labels, minlength=num_classes), ratios)
    allowed = np.asarray(ratios, dtype=np.float64) > 0
    taken = np.zeros_like(targets)

    uniq, inverse = np.unique(group_ids, return_inverse=True)
    members = [[] for _ in uniq]
    for idx, g in enumerate(inverse):
        members[g].append(idx)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(members))
    order = sorted(order, key=lambda g: -len(members[g]))  # stable sort

    assign = np.empty(len(labels), dtype=np.int64)
    for g in order:
        counts = np.bincount(labels[members[g]], minlength=num_classes)
        room = (np.clip(targets - taken, 0, None) * counts[None, :]).sum(1)
        room = np.where(allowed, room, 0).astype(np.float64)
        if room.sum() > 0:
            # Random in proportion to the room left, so duplicate groups are
            # spread over the splits instead of all filling the largest.
            s = int(rng.choice(len(room), p=room / room.sum()))
        else:
            gain = ((targets - taken) * counts[None, :]).sum(axis=1)
            s = int(np.argmax(np.where(allowed, gain, -np.inf)))
        taken[s] += counts
        assign[members[g]] = s
    return assign
