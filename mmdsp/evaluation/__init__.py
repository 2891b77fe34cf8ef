"""Evaluation a clinician can trust: calibration, intervals, rejection.

* metrics for any ``val_evaluator`` / ``test_evaluator`` (registered in
  MMPretrain's ``METRICS``): ``CalibrationMetric``, ``AUROC``,
  ``BenignVsMalignant``, ``BootstrapCI``;
* :func:`bootstrap_ci`, :func:`paired_bootstrap_ci`: the one bootstrap;
* temperature scaling (:func:`fit_temperature`; applied at test time by
  ``mmdsp.engine.hooks.TemperatureScalingHook``)
  and the reject scores of :mod:`mmdsp.evaluation.ood` and
  :mod:`mmdsp.evaluation.stage_distance`.
* :mod:`mmdsp.evaluation.kfold` (cross-validation summaries) and
  :mod:`mmdsp.evaluation.class_map` (testing on a data set with other
  classes), ``docs/own_data.md``.

See ``docs/evaluation.md``.
"""
from . import functional  # noqa: F401
from .bootstrap import BootstrapResult, bootstrap_ci, paired_bootstrap_ci
from .calibration_meta import META_KEY, read_calibration
from .metrics import (AUROC, BenignVsMalignant, BootstrapCI,
                      CalibrationMetric, ScoreLabelMetric)
from .ood import (energy_score, feature_distance, fit_thresholds,
                  flag_reasons, reason_kinds)
from .stage_distance import fit_stage_gaussians, stage_distance
from .temperature import apply_temperature, fit_temperature, get_temperature

__all__ = [
    'AUROC', 'BenignVsMalignant', 'BootstrapCI', 'BootstrapResult',
    'CalibrationMetric', 'META_KEY', 'ScoreLabelMetric',
    'apply_temperature', 'bootstrap_ci',
    'energy_score', 'feature_distance', 'fit_temperature', 'fit_thresholds',
    'flag_reasons', 'get_temperature', 'paired_bootstrap_ci',
    'read_calibration', 'reason_kinds', 'fit_stage_gaussians',
    'stage_distance'
]
