import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample
from sklearn.metrics import roc_auc_score

import mmdsp  # noqa: F401
from mmdsp.evaluation.functional import (brier_score,
                                         expected_calibration_error,
                                         negative_log_likelihood)

CLASSES = ('Benign', 'Early', 'Pre', 'Pro')


def _samples(n=120, seed=0):
    rng = np.random.default_rng(seed)
    probs = torch.softmax(torch.as_tensor(rng.normal(0, 2, (n, 4))), 1)
    labels = rng.integers(0, 4, n)
    samples = [
        DataSample().set_pred_score(p.float()).set_gt_label(int(y))
        for p, y in zip(probs, labels)
    ]
    return samples, probs.float().numpy(), labels


def _evaluate(metrics, samples, batch=16):
    # As in a Runner built from an mmpretrain config.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        evaluator = Evaluator(metrics)
    evaluator.dataset_meta = dict(classes=CLASSES)
    for i in range(0, len(samples), batch):
        evaluator.process(samples[i:i + batch])
    return evaluator.evaluate(len(samples))


def test_calibration_metric():
    samples, probs, labels = _samples()
    out = _evaluate([dict(type='CalibrationMetric', n_bins=10)], samples)
    assert out['calibration/ece'] == pytest.approx(
        100 * expected_calibration_error(probs, labels, 10))
    assert out['calibration/ece_mass'] == pytest.approx(
        100 * expected_calibration_error(probs, labels, 10, 'mass'))
    assert out['calibration/brier'] == pytest.approx(
        brier_score(probs, labels))
    assert out['calibration/nll'] == pytest.approx(
        negative_log_likelihood(probs, labels))
    with pytest.raises(ValueError, match='n_bins'):
        _evaluate([dict(type='CalibrationMetric', n_bins=0)], samples)


def test_auroc_and_clinical_metrics():
    samples, probs, labels = _samples(seed=1)
    out = _evaluate([dict(type='AUROC'), dict(type='BenignVsMalignant')],
                    samples)
    for k, name in enumerate(CLASSES):
        assert out[f'auroc/{name}'] == pytest.approx(
            100 * roc_auc_score(labels == k, probs[:, k]))
    assert out['auroc/macro'] == pytest.approx(100 * roc_auc_score(
        labels, probs / probs.sum(1, keepdims=True), multi_class='ovr'))
    truth = labels != 0
    assert out['clinical/auroc'] == pytest.approx(
        100 * roc_auc_score(truth, 1 - probs[:, 0]))
    called = probs.argmax(1) != 0
    assert out['clinical/specificity'] == pytest.approx(
        100 * np.mean(~called[~truth]))


def test_bootstrap_metric():
    samples, probs, labels = _samples(200, seed=2)
    cfg = [
        dict(type='Accuracy', topk=(1, )),
        dict(type='SingleLabelMetric', average='macro'),
        dict(type='AUROC'),
        dict(type='BootstrapCI', n_resamples=200, seed=3)
    ]
    out = _evaluate(cfg, samples)
    pairs = dict(accuracy='accuracy/top1',
                 precision='single-label/precision',
                 recall='single-label/recall',
                 f1='single-label/f1-score', auroc='auroc/macro')
    for item, key in pairs.items():
        item = 'f1-score' if item == 'f1' else item
        low, high = out[f'bootstrap/{item}_low'], out[f'bootstrap/{item}_high']
        assert low < out[key] < high, (item, low, out[key], high)
        assert high - low < 30
    # seeded: the same run gives the same interval
    again = _evaluate(cfg, samples)
    assert again['bootstrap/accuracy_low'] == out['bootstrap/accuracy_low']
    with pytest.raises(ValueError, match='top5'):
        _evaluate([dict(type='BootstrapCI', items=('top5', ))], samples)


def _sklearn_stats(probs, labels):
    """Accuracy, macro precision / recall / F1 (as SingleLabelMetric: the
    mean of the per-class values, 0 for a class never predicted) and the
    macro one-vs-rest AUROC, in %, by scikit-learn."""
    from sklearn.metrics import precision_recall_fscore_support
    preds = probs.argmax(1)
    p, r, f, _ = precision_recall_fscore_support(
        labels, preds, labels=range(4), average='macro', zero_division=0)
    aurocs = [
        roc_auc_score(labels == k, probs[:, k])
        if 0 < np.sum(labels == k) < len(labels) else np.nan
        for k in range(4)
    ]
    return 100 * np.array([np.mean(preds == labels), p, r, f,
                           np.nanmean(aurocs)])


def test_bootstrap_metric_is_the_95_percent_percentile_bootstrap():
    """Each interval is the 2.5 and 97.5 percentiles of the statistic over
    the resamples ``rng.integers(0, N, N)`` of ``default_rng(seed)``
    (linear interpolation between order statistics), computed here with
    scikit-learn; ``alpha`` sets the level."""
    samples, probs, labels = _samples(150, seed=4)
    n, resamples, seed = len(labels), 150, 11
    rng = np.random.default_rng(seed)
    stats = np.array([
        _sklearn_stats(probs[idx], labels[idx])
        for idx in (rng.integers(0, n, n) for _ in range(resamples))
    ])
    stats.sort(axis=0)
    items = ('accuracy', 'precision', 'recall', 'f1-score', 'auroc')

    def pct(q):
        h = (resamples - 1) * q
        lo = int(np.floor(h))
        return stats[lo] + (h - lo) * (stats[lo + 1] - stats[lo])

    for alpha, cfg in ((0.05, {}), (0.2, dict(alpha=0.2))):
        out = _evaluate([dict(type='BootstrapCI', n_resamples=resamples,
                              seed=seed, **cfg)], samples)
        low, high = pct(alpha / 2), pct(1 - alpha / 2)
        for i, item in enumerate(items):
            assert out[f'bootstrap/{item}_low'] == pytest.approx(
                low[i], abs=1e-4), (alpha, item)
            assert out[f'bootstrap/{item}_high'] == pytest.approx(
                high[i], abs=1e-4), (alpha, item)


def test_missing_scores_are_named():
    sample = DataSample().set_pred_label(1).set_gt_label(0)
    with pytest.raises(KeyError, match='pred_score'):
        _evaluate([dict(type='AUROC')], [sample])
