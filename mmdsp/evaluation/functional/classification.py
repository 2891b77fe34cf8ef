"""Accuracy, macro precision / recall / F1 and the benign-vs-malignant view.

Percentages, as MMPretrain's ``Accuracy`` and ``SingleLabelMetric`` report
them, so the numbers line up with the test logs.
"""
import numpy as np

from .auroc import binary_auroc


def check_inputs(probs, labels, name='probs'):
    """Validate and convert ``(probs, labels)``.

    Args:
        probs (array-like): (N, K) class scores.
        labels (array-like): (N, ) integer labels in ``[0, K)``.
        name (str): What ``probs`` is called in error messages.

    Returns:
        tuple[np.ndarray, np.ndarray]: float64 probs, int64 labels.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(f'{name} must have shape (N, K), got {probs.shape}')
    if labels.shape != (probs.shape[0], ):
        raise ValueError(f'labels must have shape ({probs.shape[0]}, ) to '
                         f'match {name}, got {labels.shape}')
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f'labels must lie in [0, {probs.shape[1]}), got '
                         f'{labels.min()}..{labels.max()}')
    return probs, labels.astype(np.int64)


def accuracy(probs, labels):
    """Top-1 accuracy in %.

    Args:
        probs (array-like): (N, K) class scores.
        labels (array-like): (N, ) integer labels.
    """
    probs, labels = check_inputs(probs, labels)
    return float(np.mean(probs.argmax(1) == labels) * 100)


def precision_recall_f1(probs, labels):
    """Macro precision, recall and F1 in %, MMPretrain's way.

    Like ``SingleLabelMetric(average='macro')``: per class, precision is
    0 when the class is never predicted and recall 0 when it never occurs;
    F1 is the mean of the per-class F1 values, not ``2PR / (P + R)`` of the
    macro P and R (that is :func:`paper_f1`).

    Args:
        probs (array-like): (N, K) class scores.
        labels (array-like): (N, ) integer labels.

    Returns:
        tuple[float, float, float]: precision, recall, F1.
    """
    probs, labels = check_inputs(probs, labels)
    k = probs.shape[1]
    pred = probs.argmax(1)
    tp = np.bincount(labels[pred == labels], minlength=k)
    pred_n = np.bincount(pred, minlength=k)
    gt_n = np.bincount(labels, minlength=k)
    precision = tp / np.maximum(pred_n, 1) * 100
    recall = tp / np.maximum(gt_n, 1) * 100
    f1 = 2 * precision * recall / np.maximum(precision + recall,
                                             np.finfo(np.float32).eps)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def paper_f1(precision, recall):
    """The paper's F1: the harmonic mean of macro precision and recall.

    Args:
        precision (float | np.ndarray): Macro precision.
        recall (float | np.ndarray): Macro recall, same unit.

    Returns:
        float | np.ndarray: ``2PR / (P + R)``, NaN where ``P + R == 0``.
    """
    p, r = np.asarray(precision, float), np.asarray(recall, float)
    with np.errstate(invalid='ignore', divide='ignore'):
        out = np.where(p + r > 0, 2 * p * r / (p + r), np.nan)
    return float(out) if out.ndim == 0 else out


def group_vs_rest(probs, labels, positive):
    """A binary clinical view of a multi-class prediction: a group of
    classes (positive, e.g. the malignant ones) against the others.

    An image is called positive when its predicted class (argmax) is in the
    group, which is what the multi-class prediction tells a reader; the
    AUROC ranks images by ``1 - p(negative classes)``, the probability mass
    of the group. A ratio whose denominator is empty (e.g. no negative
    image) is NaN.

    Args:
        probs (array-like): (N, K) class probabilities.
        labels (array-like): (N, ) integer labels.
        positive (Sequence[int]): Indices of the positive classes; the
            others are negative. Neither side may be empty.

    Returns:
        dict: ``sensitivity``, ``specificity``, ``ppv``, ``npv`` and
        ``auroc``, all in %.
    """
    probs, labels = check_inputs(probs, labels)
    k = probs.shape[1]
    pos = np.zeros(k, bool)
    for c in positive:
        if not 0 <= int(c) < k:
            raise ValueError(f'positive class {c} is not a class index of '
                             f'{k} classes')
        pos[int(c)] = True
    if pos.all() or not pos.any():
        raise ValueError(f'positive classes {list(positive)} must leave '
                         f'both sides non-empty among {k} classes')
    truth = pos[labels]
    called = pos[probs.argmax(1)]
    tp = np.sum(called & truth)
    tn = np.sum(~called & ~truth)
    fp = np.sum(called & ~truth)
    fn = np.sum(~called & truth)

    def ratio(a, b):
        return float(a / b * 100) if b else float('nan')

    return dict(sensitivity=ratio(tp, tp + fn),
                specificity=ratio(tn, tn + fp),
                ppv=ratio(tp, tp + fp),
                npv=ratio(tn, tn + fn),
                auroc=binary_auroc(1 - probs[:, ~pos].sum(1), truth) * 100)


def benign_vs_malignant(probs, labels, benign_index=0):
    """The ALL view: every class but ``benign_index`` is malignant.

    :func:`group_vs_rest` with the positive group = all classes but the
    benign one (the AUROC ranks by ``1 - p(benign)``).

    Args:
        probs (array-like): (N, K) class probabilities.
        labels (array-like): (N, ) integer labels.
        benign_index (int): Index of the benign class. Defaults to 0.

    Returns:
        dict: ``sensitivity``, ``specificity``, ``ppv``, ``npv`` and
        ``auroc``, all in %.
    """
    probs, labels = check_inputs(probs, labels)
    if not 0 <= benign_index < probs.shape[1]:
        raise ValueError(f'benign_index {benign_index} is not a class index '
                         f'of {probs.shape[1]} classes')
    return group_vs_rest(
        probs, labels,
        [c for c in range(probs.shape[1]) if c != benign_index])
