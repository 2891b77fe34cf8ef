"""Calibration metrics: ECE (both binnings), Brier score, NLL."""
from mmpretrain.registry import METRICS

from ..functional import (brier_score, expected_calibration_error,
                          negative_log_likelihood)
from .score_label import ScoreLabelMetric


@METRICS.register_module()
class CalibrationMetric(ScoreLabelMetric):
    """How well the predicted probabilities match the accuracy.

    Reports ``calibration/ece`` (equal-width bins) and
    ``calibration/ece_mass`` (equal-mass bins), both in % like MMPretrain's
    accuracy, ``calibration/brier`` (multi-class Brier score, in [0, 2]) and
    ``calibration/nll`` (mean negative log-likelihood, nats).

    Args:
        n_bins (int): Number of confidence bins of both ECEs. Defaults to 15.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'calibration'``.

    Examples:
        >>> test_evaluator = [dict(type='Accuracy'),
        ...                   dict(type='CalibrationMetric', n_bins=15)]
    """
    default_prefix = 'calibration'

    def __init__(self, n_bins=15, collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f'CalibrationMetric: n_bins must be a positive '
                             f'integer, got {n_bins}')
        self.n_bins = int(n_bins)

    def compute(self, probs, labels):
        return dict(
            ece=expected_calibration_error(probs, labels, self.n_bins,
                                           'width') * 100,
            ece_mass=expected_calibration_error(probs, labels, self.n_bins,
                                                'mass') * 100,
            brier=brier_score(probs, labels),
            nll=negative_log_likelihood(probs, labels))
