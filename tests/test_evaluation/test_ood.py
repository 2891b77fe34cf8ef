import numpy as np
import pytest
import torch

from mmdsp.evaluation import (energy_score, feature_distance, fit_thresholds,
                              flag_reasons, read_calibration, reason_kinds)


def test_energy_and_feature_distance_by_hand():
    logits = np.array([[0.0, 0.0], [3.0, -1.0]])
    np.testing.assert_allclose(
        energy_score(logits), [-np.log(2), -np.log(np.exp(3) + np.exp(-1))])
    bank = np.array([[1.0, 0.0], [0.0, 2.0]])
    feats = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # cosine distances to the nearest bank feature: 0, 1 - 1/sqrt 2, 1
    np.testing.assert_allclose(feature_distance(feats, bank),
                               [0, 1 - 2**-0.5, 1], atol=1e-6)
    # second neighbour
    np.testing.assert_allclose(feature_distance(feats, bank, k=2),
                               [1, 1 - 2**-0.5, 2], atol=1e-6)
    with pytest.raises(ValueError, match='k=3'):
        feature_distance(feats, bank, k=3)
    with pytest.raises(ValueError, match='3 dims'):
        feature_distance(np.ones((1, 3)), bank)


def test_thresholds_flag_the_chosen_share():
    rng = np.random.default_rng(0)
    scores = dict(confidence=rng.random(1000), energy=rng.normal(size=1000))
    th = fit_thresholds(scores, dict(confidence=0.05, energy=0.02,
                                     feature_distance=0))
    assert set(th) == {'min_confidence', 'max_energy'}
    assert np.mean(scores['confidence'] < th['min_confidence']) == \
        pytest.approx(0.05, abs=0.002)
    assert np.mean(scores['energy'] > th['max_energy']) == pytest.approx(
        0.02, abs=0.002)
    with pytest.raises(KeyError, match='entropy'):
        fit_thresholds(scores, dict(entropy=0.1))
    with pytest.raises(KeyError, match="'feature_distance'"):
        fit_thresholds(scores, dict(feature_distance=0.1))


def test_flag_reasons_and_kinds():
    th = dict(min_confidence=0.6, max_energy=-2.0, max_feature_distance=0.3)
    assert flag_reasons(th, 0.9, -5.0, 0.1, False) == []
    reasons = flag_reasons(th, 0.5, -1.0, 0.4, True)
    assert reasons[0] == 'segmentation fell back'
    assert reasons[1] == 'low confidence (0.500 < 0.600)'
    assert reason_kinds('; '.join(reasons)) == {
        'seg_fallback', 'confidence', 'energy', 'feature_distance'}
    assert reason_kinds('') == set()
    # a score without a threshold is not checked
    assert flag_reasons({}, 0.01, 100.0, 2.0) == []


def test_read_calibration_names_the_bad_key():
    assert read_calibration({})['temperature'] == 1.0
    with pytest.raises(ValueError, match=r"ck.pth: meta\['calibration'\]"
                       r"\['temperature'\]"):
        read_calibration(dict(calibration=dict(temperature=-1)), 'ck.pth')
    with pytest.raises(KeyError, match="unknown key 'max_entropy'"):
        read_calibration(dict(calibration=dict(
            thresholds=dict(max_entropy=1.0))))
    with pytest.raises(KeyError, match='feature_bank'):
        read_calibration(dict(calibration=dict(
            thresholds=dict(max_feature_distance=0.2))))
    ok = read_calibration(dict(calibration=dict(
        temperature=2, thresholds=dict(max_feature_distance=0.2),
        feature_bank=torch.zeros(3, 4))))
    assert ok['temperature'] == 2.0 and ok['feature_k'] == 1


def test_apply_temperature_on_a_classifier():
    from mmpretrain.registry import MODELS

    from mmdsp.evaluation import apply_temperature, get_temperature
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, stem_channels=8,
                      base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64))).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        raw = model(x, mode='tensor')
        apply_temperature(model, 2.0)
        assert get_temperature(model) == 2.0
        torch.testing.assert_close(model(x, mode='tensor'), raw / 2)
        scores = torch.stack(
            [s.pred_score for s in model(x, mode='predict')])
        torch.testing.assert_close(scores, (raw / 2).softmax(1))
        apply_temperature(model, 4.0)  # replaces, does not stack
        torch.testing.assert_close(model(x, mode='tensor'), raw / 4)
        apply_temperature(model, None)
        torch.testing.assert_close(model(x, mode='tensor'), raw)
    with pytest.raises(ValueError, match='positive'):
        apply_temperature(model, 0)
    with pytest.raises(TypeError, match='no `head`'):
        apply_temperature(torch.nn.Linear(2, 2), 2.0)
