"""Percentile bootstrap confidence intervals, plain numpy.

The one bootstrap of mmdsp: the ``BootstrapCI`` metric, ``paper_tables.py``
and the comparison tools all call these two functions. A statistic is any
function of arrays that share their first axis (the resampling unit: test
images, or seeds)::

    from mmdsp.evaluation import bootstrap_ci, paired_bootstrap_ci
    from mmdsp.evaluation.functional import accuracy

    ci = bootstrap_ci(accuracy, probs, labels)          # 95 %, seed 0
    ci.estimate, ci.low, ci.high

    # DSP minus EfficientNetV2 on the same test images (same order):
    diff = paired_bootstrap_ci(accuracy, (probs_dsp, labels),
                               (probs_v2, labels))
    diff.low > 0        # the gain is not resampling noise at 95 %

    # over seeds: one accuracy per seed and model, paired by seed
    paired_bootstrap_ci(np.mean, acc_dsp_per_seed, acc_v2_per_seed)
"""
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence, Tuple, Union

import numpy as np

__all__ = ['BootstrapResult', 'bootstrap_ci', 'paired_bootstrap_ci']


@dataclass
class BootstrapResult:
    """A bootstrap confidence interval.

    Attributes:
        estimate: The statistic on the original arrays.
        low, high: The ``alpha / 2`` and ``1 - alpha / 2`` percentiles of
            the resampled statistics (NaN-ignoring: a resample on which the
            statistic is undefined, e.g. a class drawn zero times for its
            AUROC, is left out).
        samples: The resampled statistics, ``(n_resamples, ...)``.
        alpha: 0.05 for a 95 % interval.
    """
    estimate: Union[float, np.ndarray]
    low: Union[float, np.ndarray]
    high: Union[float, np.ndarray]
    samples: np.ndarray
    alpha: float


def _as_tuple(arrays) -> Tuple[np.ndarray, ...]:
    # Only a tuple means several arrays: a list is one array of numbers.
    if isinstance(arrays, tuple):
        return tuple(np.asarray(a) for a in arrays)
    return (np.asarray(arrays), )


def _check(arrays, n_resamples, alpha, what='arrays'):
    if not arrays:
        raise ValueError(f'bootstrap: no {what} to resample')
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f'bootstrap: the {what} must have the same length '
                         f'(first axis), got {[len(a) for a in arrays]}')
    n = lengths.pop()
    if n == 0:
        raise ValueError(f'bootstrap: the {what} are empty')
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f'bootstrap: n_resamples must be a positive '
                         f'integer, got {n_resamples}')
    if not 0 < alpha < 1:
        raise ValueError(f'bootstrap: alpha must lie in (0, 1), got {alpha}')
    return n


def _result(stat_fn, arrays_list, n, n_resamples, seed, alpha, combine):
    rng = np.random.default_rng(seed)
    estimate = combine([np.asarray(stat_fn(*a), float) for a in arrays_list])
    samples = np.empty((int(n_resamples), ) + estimate.shape)
    for i in range(int(n_resamples)):
        idx = rng.integers(0, n, n)
        samples[i] = combine([
            np.asarray(stat_fn(*(x[idx] for x in a)), float)
            for a in arrays_list
        ])
    with warnings.catch_warnings():
        # An all-NaN column gives NaN bounds, as it should, with a warning.
        warnings.simplefilter('ignore', RuntimeWarning)
        low, high = np.nanquantile(samples, [alpha / 2, 1 - alpha / 2],
                                   axis=0)

    def scalar(x):
        return float(x) if np.ndim(x) == 0 else x

    return BootstrapResult(scalar(estimate), scalar(low), scalar(high),
                           samples, alpha)


def bootstrap_ci(stat_fn: Callable,
                 *arrays,
                 n_resamples: int = 1000,
                 seed: int = 0,
                 alpha: float = 0.05) -> BootstrapResult:
    """Percentile bootstrap interval of ``stat_fn(*arrays)``.

    Each resample draws ``N`` indices with replacement (``N`` = the common
    first-axis length) and applies them to every array alike, so e.g. each
    image keeps its own label.

    Args:
        stat_fn (callable): ``stat_fn(*arrays) -> float`` or a 1-D array of
            several statistics (one draw of indices serves them all).
        *arrays (array-like): Arrays sharing their first axis.
        n_resamples (int): Number of resamples. Defaults to 1000.
        seed (int): Seed of ``np.random.default_rng``; the same seed and
            inputs give the same interval. Defaults to 0.
        alpha (float): 0.05 gives the 95 % interval. Defaults to 0.05.

    Returns:
        BootstrapResult: ``estimate``, ``low``, ``high``, ``samples``.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = _check(arrays, n_resamples, alpha)
    return _result(stat_fn, [arrays], n, n_resamples, seed, alpha,
                   lambda stats: stats[0])


def paired_bootstrap_ci(stat_fn: Callable,
                        arrays_a: Union[np.ndarray, Sequence, tuple],
                        arrays_b: Union[np.ndarray, Sequence, tuple],
                        n_resamples: int = 1000,
                        seed: int = 0,
                        alpha: float = 0.05) -> BootstrapResult:
    """Percentile bootstrap interval of ``stat_fn(*a) - stat_fn(*b)``.

    Model A and model B are evaluated on the same units (test images in the
    same order, or the same seeds), and every resample applies the same
    indices to both, so what the two share (which images are hard) cancels
    out of the difference.

    Args:
        stat_fn (callable): As in :func:`bootstrap_ci`.
        arrays_a (array-like | tuple): Model A's array (a list counts as
            one array), or a tuple of arrays passed to ``stat_fn`` (e.g.
            ``(probs_a, labels)``).
        arrays_b (array-like | tuple): Model B's, same form and length.
        n_resamples (int): Defaults to 1000.
        seed (int): Defaults to 0.
        alpha (float): Defaults to 0.05.

    Returns:
        BootstrapResult: Of the difference A - B. ``np.mean(samples <= 0)``
        is the bootstrap share of resamples where A does not beat B.
    """
    a, b = _as_tuple(arrays_a), _as_tuple(arrays_b)
    if len(a) != len(b):
        raise ValueError(f'paired bootstrap: model A has {len(a)} arrays, '
                         f'model B {len(b)}')
    n = _check(a + b, n_resamples, alpha, what='arrays of both models')
    return _result(stat_fn, [a, b], n, n_resamples, seed, alpha,
                   lambda stats: stats[0] - stats[1])
