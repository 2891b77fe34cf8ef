"""The stage-statistics distance: Ledoit-Wolf against scikit-learn, the
score by hand, the recorded statistics, and the checkpoint entry."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from mmdsp.apis import StageStatistics, stage_modules
from mmdsp.evaluation import (fit_stage_gaussians, flag_reasons,
                              read_calibration, reason_kinds,
                              stage_distance)
from mmdsp.evaluation.stage_distance import ledoit_wolf


def test_ledoit_wolf_matches_scikit_learn():
    covariance = pytest.importorskip('sklearn.covariance')
    rng = np.random.default_rng(0)
    for n, d in ((40, 10), (200, 5), (15, 30)):
        x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        x -= x.mean(0)
        ours = ledoit_wolf(torch.as_tensor(x)).numpy()
        ref = covariance.LedoitWolf(assume_centered=True).fit(x).covariance_
        np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-10)


def test_stage_distance_by_hand():
    rng = np.random.default_rng(1)
    train = [rng.normal(size=(500, 3)) * [1, 2, 3] + 5,
             rng.normal(size=(500, 2))]
    val = [rng.normal(size=(300, 3)) * [1, 2, 3] + 5,
           rng.normal(size=(300, 2))]
    gaussians = fit_stage_gaussians(train, val)
    g = gaussians[0]
    np.testing.assert_allclose(g['mean'], train[0].mean(0), rtol=1e-6)
    np.testing.assert_allclose(g['scale'], train[0].std(0, ddof=1),
                               rtol=1e-6)
    # one image by hand: log Mahalanobis per stage, standardised by val,
    # the larger of the two
    x = [np.array([[5.0, 9.0, 5.0]]), np.array([[0.1, -0.2]])]
    per = []
    for s in range(2):
        gs = gaussians[s]
        z = (x[s][0] - gs['mean'].double().numpy()) / gs['scale'].numpy()
        d = np.log(z @ gs['precision'].double().numpy() @ z)
        per.append((d - gs['val_mean']) / gs['val_std'])
    assert stage_distance(x, gaussians)[0] == pytest.approx(max(per),
                                                           rel=1e-5)
    assert per[0] > per[1]  # 2 std off in one channel of stage 0
    # on validation images each stage's score is standardised
    for s in range(2):
        one = stage_distance([val[s]], gaussians[s:s + 1])
        assert one.mean() == pytest.approx(0, abs=1e-6)
        assert one.std(ddof=1) == pytest.approx(1, rel=1e-6)
    # far from the training images scores far higher
    far = [train[0][:5] * 3, train[1][:5] * 3]
    assert stage_distance(far, gaussians).min() > np.quantile(
        stage_distance(val, gaussians), 0.98)
    with pytest.raises(ValueError, match='stage 1 gives 3 dims'):
        stage_distance([val[0], val[0]], gaussians)
    with pytest.raises(ValueError, match='1 stages for 2'):
        stage_distance(val[:1], gaussians)
    with pytest.raises(ValueError, match='2 training and 1 validation'):
        fit_stage_gaussians(train, val[:1])


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.layers = nn.ModuleList(
            [nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1), nn.Flatten()])

    def forward(self, x):
        for layer in self.backbone.layers:
            x = layer(x)
        return x


def test_stage_statistics_records_mean_and_std():
    torch.manual_seed(0)
    net = _Net().eval()
    assert stage_modules(net) == ['backbone.layers.0', 'backbone.layers.1',
                                  'backbone.layers.2']
    with pytest.raises(ValueError, match="'backbone.nope'"):
        stage_modules(net, ['backbone.nope'])
    x = torch.randn(5, 3, 8, 8)
    with StageStatistics(net) as stats:
        net(x)
        out = stats.pop()
    # the Flatten gives no feature map: two stages, mean then std
    assert [o.shape for o in out] == [(5, 8), (5, 4)]
    assert stats.recorded == ['backbone.layers.0', 'backbone.layers.1']
    y = net.backbone.layers[0](x)
    np.testing.assert_allclose(out[0][:, :4], y.mean((2, 3)).detach(),
                               atol=1e-6)
    np.testing.assert_allclose(out[0][:, 4:],
                               y.std((2, 3), correction=0).detach(),
                               atol=1e-6)
    # a 1x1 map has std 0, not NaN
    with StageStatistics(net) as stats:
        net(torch.randn(2, 3, 3, 3))
        assert torch.all(stats.pop()[0][:, 4:] == 0)
    # the hooks are gone after `with`
    net(x)
    assert stats.pop() == []


def test_flag_reason_and_checkpoint_entry():
    reasons = flag_reasons(dict(max_stage_distance=2.0), stage_distance=3.5)
    assert reasons == ['out of distribution: stage statistics 3.50 > 2.00']
    assert reason_kinds(reasons[0]) == {'stage_distance'}
    assert flag_reasons(dict(max_stage_distance=2.0), stage_distance=1) == []
    with pytest.raises(KeyError, match='stage_gaussians'):
        read_calibration(dict(calibration=dict(
            thresholds=dict(max_stage_distance=2.0))))
    with pytest.raises(ValueError, match='names 1 stages but holds 0'):
        read_calibration(dict(calibration=dict(stage_names=['backbone.x'])))
    with pytest.raises(KeyError, match=r"\['stage_gaussians'\]\[0\] lacks"):
        read_calibration(dict(calibration=dict(
            stage_names=['backbone.x'], stage_gaussians=[dict(mean=1)])))
    assert read_calibration({})['stage_gaussians'] == []
