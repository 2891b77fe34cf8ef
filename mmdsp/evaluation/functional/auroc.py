"""Area under the ROC curve, binary and one-vs-rest."""
import numpy as np


def _mid_ranks(x):
    """1-based ranks, ties sharing their mean rank (scipy's rankdata)."""
    order = np.argsort(x, kind='stable')
    sorted_x = x[order]
    # first index of each run of equal values, and the run lengths
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    lengths = np.diff(np.r_[starts, x.size])
    mean_rank = starts + (lengths + 1) / 2
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, lengths)
    return ranks


def binary_auroc(scores, positives):
    """AUROC of ``scores`` for the boolean ``positives``.

    The Mann-Whitney statistic with mid-ranks, so ties count one half: the
    probability that a random positive outscores a random negative.

    Args:
        scores (array-like): (N, ) higher means more likely positive.
        positives (array-like): (N, ) booleans.

    Returns:
        float: In [0, 1]; NaN when one of the two groups is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    ranks = _mid_ranks(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) /
                 (n_pos * n_neg))


def one_vs_rest_auroc(probs, labels):
    """Per-class AUROC, each class against all the others.

    Args:
        probs (array-like): (N, K) class scores.
        labels (array-like): (N, ) integer labels.

    Returns:
        np.ndarray: (K, ) AUROC in [0, 1], NaN for a class that is absent
        (or the only one present). Their ``np.nanmean`` is the macro AUROC.
    """
    from .classification import check_inputs
    probs, labels = check_inputs(probs, labels)
    return np.array([
        binary_auroc(probs[:, k], labels == k) for k in range(probs.shape[1])
    ])
