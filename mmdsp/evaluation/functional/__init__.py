"""Plain numpy statistics behind mmdsp's metrics, bootstrap and tools.

Each function takes class probabilities ``probs`` of shape (N, K) and
integer labels of shape (N, ), so the same code serves a metric, a bootstrap
resample and an offline prediction dump.
"""
from .auroc import binary_auroc, one_vs_rest_auroc
from .calibration import (brier_score, expected_calibration_error,
                          negative_log_likelihood, reliability_bins)
from .classification import (accuracy, benign_vs_malignant, check_inputs,
                             group_vs_rest, paper_f1, precision_recall_f1)

__all__ = [
    'accuracy', 'benign_vs_malignant', 'binary_auroc', 'brier_score',
    'check_inputs', 'expected_calibration_error', 'group_vs_rest',
    'negative_log_likelihood',
    'one_vs_rest_auroc', 'paper_f1', 'precision_recall_f1',
    'reliability_bins'
]
