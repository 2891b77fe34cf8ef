"""Calibration of class probabilities: ECE, Brier score, NLL.

ECE follows Guo et al. (2017): the confidence of an image is its largest
probability; images are grouped into bins of confidence and ECE is the
image-weighted mean of ``|accuracy - mean confidence|`` over the bins.
"""
import numpy as np

from .classification import check_inputs

BINNINGS = ('width', 'mass')


def reliability_bins(probs, labels, n_bins=15, binning='width'):
    """Accuracy and mean confidence per confidence bin.

    Args:
        probs (array-like): (N, K) class probabilities.
        labels (array-like): (N, ) integer labels.
        n_bins (int): Number of bins. Defaults to 15 (Guo et al.).
        binning (str): ``'width'``: equal-width bins of [0, 1] (a
            confidence on an edge goes to the lower bin, as in Guo et al.);
            ``'mass'``: bins holding equal numbers of images (sorted by
            confidence; sizes differ by at most one). Defaults to 'width'.

    Returns:
        dict: ``count``, ``accuracy``, ``confidence`` (each (n_bins, );
        accuracy and confidence are NaN in empty bins) and ``edges``
        ((n_bins + 1, ), the bins' confidence limits; for ``'mass'`` the
        smallest and largest confidence in each bin give the limits).
    """
    probs, labels = check_inputs(probs, labels)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f'n_bins must be a positive integer, got {n_bins}')
    if binning not in BINNINGS:
        raise ValueError(f'binning must be one of {BINNINGS}, got '
                         f'{binning!r}')
    n_bins = int(n_bins)
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    if binning == 'width':
        edges = np.linspace(0, 1, n_bins + 1)
        # (lo, hi] bins; confidence 0 cannot occur for probabilities.
        idx = np.clip(np.searchsorted(edges, conf, side='left') - 1, 0,
                      n_bins - 1)
    else:
        order = np.argsort(conf, kind='stable')
        idx = np.empty(conf.size, np.int64)
        idx[order] = np.arange(conf.size) * n_bins // max(conf.size, 1)
        sorted_conf = conf[order]
        splits = np.searchsorted(idx[order], np.arange(1, n_bins))
        inner = [(sorted_conf[s - 1] + sorted_conf[s]) / 2
                 if 0 < s < conf.size else np.nan for s in splits]
        edges = np.array([0.0, *inner, 1.0])
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        acc = np.bincount(idx, correct, minlength=n_bins) / count
        mean_conf = np.bincount(idx, conf, minlength=n_bins) / count
    return dict(count=count, accuracy=acc, confidence=mean_conf,
                edges=edges)


def expected_calibration_error(probs, labels, n_bins=15, binning='width'):
    """Expected calibration error, a fraction in [0, 1].

    Args:
        probs (array-like): (N, K) class probabilities.
        labels (array-like): (N, ) integer labels.
        n_bins (int): Number of bins. Defaults to 15.
        binning (str): ``'width'`` or ``'mass'``; see
            :func:`reliability_bins`. Defaults to 'width'.
    """
    bins = reliability_bins(probs, labels, n_bins, binning)
    filled = bins['count'] > 0
    gap = np.abs(bins['accuracy'][filled] - bins['confidence'][filled])
    return float(np.sum(bins['count'][filled] * gap) / bins['count'].sum())


def brier_score(probs, labels):
    """Multi-class Brier score: mean over images of ``sum_k (p_k - y_k)^2``.

    In [0, 2]; Brier's (1950) original definition (scikit-learn's
    ``brier_score_loss`` for two classes is half of it).
    """
    probs, labels = check_inputs(probs, labels)
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot)**2, axis=1)))


def negative_log_likelihood(probs, labels, eps=1e-12):
    """Mean ``-log p(true class)``, natural log.

    Args:
        probs (array-like): (N, K) class probabilities.
        labels (array-like): (N, ) integer labels.
        eps (float): Floor of the probability, so that one certain mistake
            gives a large finite loss, not infinity. Defaults to 1e-12.
    """
    probs, labels = check_inputs(probs, labels)
    p = probs[np.arange(labels.size), labels]
    return float(np.mean(-np.log(np.clip(p, eps, None))))
