"""The numbers of a cross-validation: per fold, mean +- std, pooled.

Each fold's model is tested on its own validation fold, the images it never
trained on, so the folds' predictions together cover every image of the
folds once: the out-of-fold (OOF) predictions. Two summaries follow:

- mean +- std over folds: how much the result moves with the split (and the
  training run); the std is over K numbers, so with K = 3 it is rough;
- pooled OOF metric with a 95 % bootstrap interval over images
  (:func:`~.bootstrap.bootstrap_ci`): the one number on all images, and how
  much it would move with other images of the same kind.

The interval treats images as independent; duplicate groups never straddle
folds, but near-identical images inside one fold still make it a little too
narrow.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from .bootstrap import bootstrap_ci, paired_bootstrap_ci
from .functional import (accuracy, group_vs_rest, one_vs_rest_auroc,
                         precision_recall_f1)

__all__ = ['fold_metrics', 'summarize_folds', 'compare_pooled', 'METRICS']

METRICS = ('accuracy', 'f1', 'auroc', 'sensitivity', 'specificity')


def _auroc(probs, labels):
    per_class = one_vs_rest_auroc(probs, labels)
    if probs.shape[1] == 2:
        # Both one-vs-rest AUROCs of two classes are the same number.
        return float(per_class[1] * 100)
    return float(np.nanmean(per_class) * 100) if np.isfinite(
        per_class).any() else float('nan')


def _stat_fn(positive: Optional[Sequence[int]]):
    """One function of (probs, labels) giving :data:`METRICS` (NaN for the
    clinical pair without a positive group), for the bootstrap."""

    def stats(probs, labels):
        out = [accuracy(probs, labels),
               precision_recall_f1(probs, labels)[2],
               _auroc(probs, labels)]
        if positive:
            clin = group_vs_rest(probs, labels, positive)
            out += [clin['sensitivity'], clin['specificity']]
        else:
            out += [float('nan')] * 2
        return np.array(out, float)

    return stats


def fold_metrics(probs, labels,
                 positive: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """:data:`METRICS` of one fold's predictions, in %.

    Args:
        probs (array-like): (N, K) class probabilities.
        labels (array-like): (N, ) labels.
        positive (Sequence[int], optional): Positive classes of the
            clinical view (sensitivity, specificity); None gives NaN.

    Returns:
        dict: ``accuracy``, ``f1`` (macro, MMPretrain's), ``auroc`` (macro
        one-vs-rest; the positive class's for two classes),
        ``sensitivity``, ``specificity``.
    """
    values = _stat_fn(positive)(np.asarray(probs, float), np.asarray(labels))
    return dict(zip(METRICS, map(float, values)))


def summarize_folds(folds: List[dict],
                    positive: Optional[Sequence[int]] = None,
                    n_resamples: int = 1000,
                    seed: int = 0) -> dict:
    """Per-fold metrics, their mean and std, and the pooled OOF metrics.

    Args:
        folds (list[dict]): One dict per fold with ``probs`` (N_k, K) and
            ``labels`` (N_k, ) of its validation fold.
        positive (Sequence[int], optional): Positive classes of the
            clinical view.
        n_resamples (int): Bootstrap resamples. Defaults to 1000.
        seed (int): Bootstrap seed. Defaults to 0.

    Returns:
        dict: ``per_fold`` (list of :func:`fold_metrics`), ``mean``,
        ``std`` (sample std, ddof 1), ``pooled``, ``pooled_low``,
        ``pooled_high`` (dicts keyed by metric) and ``n`` (images pooled).
    """
    if len(folds) < 2:
        raise ValueError(f'a cross-validation needs at least 2 folds, got '
                         f'{len(folds)}')
    per_fold = [fold_metrics(f['probs'], f['labels'], positive)
                for f in folds]
    table = np.array([[m[k] for k in METRICS] for m in per_fold])
    with np.errstate(invalid='ignore'):
        mean, std = table.mean(0), table.std(0, ddof=1)
    probs = np.concatenate([np.asarray(f['probs'], float) for f in folds])
    labels = np.concatenate([np.asarray(f['labels']) for f in folds])
    ci = bootstrap_ci(_stat_fn(positive), probs, labels,
                      n_resamples=n_resamples, seed=seed)

    def named(values):
        return dict(zip(METRICS, map(float, values)))

    return dict(per_fold=per_fold, mean=named(mean), std=named(std),
                pooled=named(ci.estimate), pooled_low=named(ci.low),
                pooled_high=named(ci.high), n=int(len(labels)))


def compare_pooled(a: dict, b: dict, n_resamples: int = 1000,
                   seed: int = 0) -> dict:
    """Paired bootstrap of A - B on the pooled OOF predictions.

    Both runs must have predicted the same images (the same folds):
    ``a`` and ``b`` hold ``probs``, ``labels`` and ``img_paths`` of all
    their folds, matched by path.

    Returns:
        dict: Per metric of :data:`METRICS` (accuracy, F1, AUROC; the
        clinical pair is left out), ``{'diff', 'low', 'high'}`` in points.
    """
    from .dumps import align_predictions
    a, b = align_predictions(a, b)
    stats = _stat_fn(None)
    ci = paired_bootstrap_ci(lambda p, y: stats(p, y)[:3],
                             (a['probs'], a['labels']),
                             (b['probs'], b['labels']),
                             n_resamples=n_resamples, seed=seed)
    return {k: dict(diff=float(ci.estimate[i]), low=float(ci.low[i]),
                    high=float(ci.high[i]))
            for i, k in enumerate(METRICS[:3])}
