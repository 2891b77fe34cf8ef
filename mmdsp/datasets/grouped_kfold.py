"""Stratified k-fold assignment that keeps groups of duplicates in one fold.

MMPretrain's ``KFoldDataset`` (and ``tools/kfold-cross-valid.py``) folds
single images, so the two shots of one microscope field can sit in the
training and the validation fold of the same round. Here whole duplicate
groups (:func:`mmdsp.datasets.duplicates.find_duplicates`) go to one fold,
and each class is spread over the folds as evenly as its groups allow.
"""
from typing import Optional, Sequence

import numpy as np

from .grouped_split import split_targets

__all__ = ['grouped_stratified_kfold']


def grouped_stratified_kfold(labels: Sequence[int],
                             group_ids: Sequence[int],
                             num_folds: int,
                             seed: int = 0,
                             num_classes: Optional[int] = None,
                             class_names: Optional[Sequence[str]] = None
                             ) -> np.ndarray:
    """Fold index of every item; items sharing a group share a fold.

    Groups are visited largest first (random order among equal sizes, from
    ``seed``) and each goes to the fold with the most room left for its
    classes (``sum_c n_c * (target[f, c] - taken[f, c])``, ties broken at
    random), where the targets split every class into ``num_folds`` equal
    parts by largest remainder. Singletons come last and fill the quotas,
    so with few duplicates every fold holds each class within one image of
    ``1 / num_folds``. Unlike the random draw of
    :func:`~.grouped_split.grouped_stratified_split`, the choice is greedy:
    every fold must get some of every class.

    Args:
        labels (Sequence[int]): Class index of each item.
        group_ids (Sequence[int]): Group of each item.
        num_folds (int): Number of folds, at least 2.
        seed (int): Seed of the random order. Defaults to 0.
        num_classes (int, optional): Defaults to ``max(labels) + 1``.
        class_names (Sequence[str], optional): For error messages.

    Returns:
        np.ndarray: Fold index (``0..num_folds - 1``) of each item.

    Raises:
        ValueError: ``num_folds`` is below 2, or a class has fewer groups
            than folds (some fold could not validate it), named in the
            message with its number of groups.
    """
    labels = np.asarray(labels, dtype=np.int64)
    group_ids = np.asarray(group_ids)
    if labels.shape != group_ids.shape:
        raise ValueError(f'{len(labels)} labels but {len(group_ids)} '
                         'group ids')
    if int(num_folds) != num_folds or num_folds < 2:
        raise ValueError(f'num_folds must be an integer >= 2, got '
                         f'{num_folds}')
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    num_classes = num_classes or int(labels.max()) + 1
    names = list(class_names) if class_names else [
        str(c) for c in range(num_classes)]

    uniq, inverse = np.unique(group_ids, return_inverse=True)
    members = [[] for _ in uniq]
    for idx, g in enumerate(inverse):
        members[g].append(idx)
    groups_per_class = np.zeros(num_classes, np.int64)
    for m in members:
        groups_per_class[np.unique(labels[m])] += 1
    short = [c for c in range(num_classes)
             if 0 < groups_per_class[c] < num_folds]
    if short:
        raise ValueError(
            f'{num_folds} folds need at least {num_folds} groups of '
            'duplicates (or single images) per class, but ' + ', '.join(
                f'class {names[c]!r} has {groups_per_class[c]}'
                for c in short) + ': use fewer folds or more images')

    targets = split_targets(
        np.bincount(labels, minlength=num_classes), [1] * num_folds)
    taken = np.zeros_like(targets)
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(len(members)),
                   key=lambda g: -len(members[g]))  # stable sort
    assign = np.empty(len(labels), dtype=np.int64)
    for g in order:
        counts = np.bincount(labels[members[g]], minlength=num_classes)
        room = ((targets - taken) * counts[None, :]).sum(1)
        # Visit the folds in a random order, so argmax breaks ties at random.
        perm = rng.permutation(num_folds)
        f = int(perm[np.argmax(room[perm])])
        taken[f] += counts
        assign[members[g]] = f

    present = [c for c in range(num_classes) if groups_per_class[c]]
    for f in range(num_folds):
        missing = [names[c] for c in present if taken[f, c] == 0]
        if missing:
            # Only large groups spanning several classes get here.
            raise ValueError(
                f'fold {f} got no image of class(es) {missing}: the '
                'duplicate groups are too large or too mixed for '
                f'{num_folds} folds; use fewer folds')
    return assign
