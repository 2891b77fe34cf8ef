import numpy as np
import pytest
import torch
from sklearn.metrics import (log_loss, precision_recall_fscore_support,
                             roc_auc_score)

from mmdsp.evaluation.functional import (accuracy, benign_vs_malignant,
                                         binary_auroc, brier_score,
                                         expected_calibration_error,
                                         negative_log_likelihood,
                                         one_vs_rest_auroc, paper_f1,
                                         precision_recall_f1,
                                         reliability_bins)


def _random(n=200, k=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k))
    probs = torch.softmax(torch.as_tensor(logits), 1).numpy()
    labels = rng.integers(0, k, n)
    return probs, labels


def _hand_probs():
    # Confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.3 (wrong).
    probs = np.array([[0.9, 0.05, 0.03, 0.02], [0.8, 0.1, 0.05, 0.05],
                      [0.1, 0.6, 0.2, 0.1], [0.3, 0.25, 0.25, 0.2]])
    labels = np.array([0, 2, 1, 3])
    return probs, labels


def test_ece_by_hand():
    probs, labels = _hand_probs()
    # width, 2 bins: (0, .5] holds 0.3 (acc 0): gap .3; (.5, 1] holds
    # .9 .8 .6, mean .7667, acc 2/3: gap .1 -> (1 * .3 + 3 * .1) / 4
    assert expected_calibration_error(probs, labels, 2) == pytest.approx(0.15)
    # mass, 2 bins: {.3, .6} mean .45 acc .5; {.8, .9} mean .85 acc .5
    assert expected_calibration_error(probs, labels, 2, 'mass') == \
        pytest.approx((2 * 0.05 + 2 * 0.35) / 4)
    bins = reliability_bins(probs, labels, 2)
    assert bins['count'].tolist() == [1, 3]
    np.testing.assert_allclose(bins['confidence'], [0.3, 2.3 / 3])
    # A confidence on an edge goes to the lower bin.
    edge = np.array([[0.5, 0.5, 0, 0], [1.0, 0, 0, 0]])
    assert reliability_bins(edge, np.array([0, 0]), 2)['count'].tolist() \
        == [1, 1]


def test_ece_mass_bins_hold_equal_counts_and_bad_args():
    probs, labels = _random(103)
    bins = reliability_bins(probs, labels, 10, 'mass')
    assert set(bins['count']) == {10, 11} and bins['count'].sum() == 103
    # every confidence of bin i is below every one of bin i + 1
    conf = probs.max(1)
    order = np.sort(conf)
    assert np.all(np.diff(bins['confidence']) > 0)
    first = int(bins['count'][0])
    assert bins['confidence'][0] == pytest.approx(order[:first].mean())
    with pytest.raises(ValueError, match='binning'):
        expected_calibration_error(probs, labels, 10, 'quantile')
    with pytest.raises(ValueError, match='n_bins'):
        expected_calibration_error(probs, labels, 0)
    with pytest.raises(ValueError, match='labels must have shape'):
        expected_calibration_error(probs, labels[:5])


def test_perfectly_calibrated_has_small_ece():
    rng = np.random.default_rng(1)
    probs, _ = _random(20000, seed=1)
    labels = np.array([rng.choice(4, p=p) for p in probs])
    assert expected_calibration_error(probs, labels) < 0.02
    assert expected_calibration_error(probs, labels, binning='mass') < 0.02


def test_brier_and_nll_by_hand_and_sklearn():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = np.array([0, 1])
    hand = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.7**2 + 0.6**2)) / 2
    assert brier_score(probs, labels) == pytest.approx(hand)
    assert negative_log_likelihood(probs, labels) == pytest.approx(
        -(np.log(0.7) + np.log(0.3)) / 2)
    probs, labels = _random()
    assert negative_log_likelihood(probs, labels) == pytest.approx(
        log_loss(labels, probs, labels=range(4)))


def test_auroc_by_hand_and_sklearn():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs
    assert binary_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert binary_auroc([0.5, 0.5], [1, 0]) == 0.5  # a tie counts one half
    assert np.isnan(binary_auroc([0.2, 0.3], [1, 1]))
    probs, labels = _random()
    per_class = one_vs_rest_auroc(probs, labels)
    for k in range(4):
        assert per_class[k] == pytest.approx(
            roc_auc_score(labels == k, probs[:, k]))
    assert per_class.mean() == pytest.approx(
        roc_auc_score(labels, probs, multi_class='ovr', average='macro'))
    # a class absent from the labels is NaN, not a crash
    assert np.isnan(one_vs_rest_auroc(probs, labels % 3)[3])


def test_precision_recall_f1_match_sklearn_and_mmpretrain():
    from mmpretrain.evaluation import SingleLabelMetric
    probs, labels = _random(seed=3)
    probs[:, 3] = 0  # class 3 never predicted: precision 0 for it
    p, r, f = precision_recall_f1(probs, labels)
    sk = precision_recall_fscore_support(labels, probs.argmax(1),
                                         average='macro', zero_division=0)
    assert (p, r, f) == pytest.approx(tuple(100 * x for x in sk[:3]))
    (mm, ) = SingleLabelMetric.calculate(torch.as_tensor(probs),
                                         torch.as_tensor(labels),
                                         average='macro')
    assert (p, r, f) == pytest.approx([float(x) for x in mm[:3]], abs=1e-4)
    assert accuracy(probs, labels) == pytest.approx(
        100 * np.mean(probs.argmax(1) == labels))


def test_paper_f1():
    assert paper_f1(50, 100) == pytest.approx(200 / 3)
    # The paper's ResNet34 row: P 94.46, R 94.00, F1 94.22 (2PR/(P+R))
    assert paper_f1(94.46, 94.00) == pytest.approx(94.22, abs=0.01)
    assert np.isnan(paper_f1(0, 0))


def test_benign_vs_malignant_by_hand_and_sklearn():
    from sklearn.metrics import precision_score, recall_score
    # labels: 2 benign, 3 malignant; predictions: benign, Pre | Early,
    # benign, Pro -> TP 2, FN 1, TN 1, FP 1
    probs = np.array([[.7, .1, .1, .1], [.2, .1, .6, .1], [.1, .7, .1, .1],
                      [.5, .2, .2, .1], [.1, .1, .1, .7]])
    labels = np.array([0, 0, 1, 2, 3])
    out = benign_vs_malignant(probs, labels)
    assert out['sensitivity'] == pytest.approx(200 / 3)
    assert out['specificity'] == pytest.approx(50)
    assert out['ppv'] == pytest.approx(200 / 3)
    assert out['npv'] == pytest.approx(50)
    truth, called = labels != 0, probs.argmax(1) != 0
    assert out['sensitivity'] == pytest.approx(
        100 * recall_score(truth, called))
    assert out['ppv'] == pytest.approx(100 * precision_score(truth, called))
    assert out['auroc'] == pytest.approx(
        100 * roc_auc_score(truth, 1 - probs[:, 0]))
    with pytest.raises(ValueError, match='benign_index 7'):
        benign_vs_malignant(probs, labels, benign_index=7)
    assert np.isnan(benign_vs_malignant(probs[2:], labels[2:])['specificity'])


def test_auroc_with_many_ties_matches_sklearn():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, 300) / 4  # four distinct values only
    positives = rng.random(300) < 0.4
    assert binary_auroc(scores, positives) == pytest.approx(
        roc_auc_score(positives, scores))
