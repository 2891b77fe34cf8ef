"""fit_temperature.py end to end on a tiny model, and the calibrated
checkpoint through mmdsp.apis, tools/predict.py and a Runner test."""
import csv
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

import mmdsp  # noqa: F401
from mmdsp.apis import predict
from mmdsp.evaluation import fit_temperature
from mmdsp.evaluation.functional import negative_log_likelihood


def _logits(model, path):
    """Independent preprocessing of tiny_resnet.py: resize 32, normalise."""
    img = mmcv.imresize(mmcv.imread(path), (32, 32))
    x = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).float()
    with torch.no_grad():
        return model(((x - 128) / 64)[None], mode='tensor')[0].double()


@pytest.fixture(scope='module')
def setup(tmp_path_factory, tools):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    root = tmp_path_factory.mktemp('fit_t')
    data = tools.write_tree(str(root / 'data'), per_class=6)
    cfg_file = tools.tiny_config(root, data)
    cfg = Config.fromfile(str(cfg_file))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():  # logits far from calibrated: T must not be 1
        model.head.fc.weight.mul_(40)
    ckpt = str(root / 'tiny.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    images = sorted(glob.glob(osp.join(data, '*', '*.png')))
    labels = np.array([0 if '/a/' in p else 1 for p in images])
    return dict(root=root, cfg=str(cfg_file), ckpt=ckpt, model=model,
                images=images, labels=labels)


@pytest.fixture(scope='module')
def fitted(setup, tools):
    tool = tools.load('analysis_tools/fit_temperature.py')
    out = str(setup['root'] / 'calibrated.pth')
    res = tool.main([
        setup['cfg'], setup['ckpt'], '--out', out, '--num-workers', '0',
        '--no-progress', '--flag-rate', 'confidence=0.25', 'energy=0.1',
        'feature_distance=0.2', '--device', 'cpu'
    ])
    return dict(res, tool=tool)


def test_temperature_equals_independent_fit(setup, fitted):
    logits = torch.stack([_logits(setup['model'], p)
                          for p in setup['images']]).numpy()
    t = fit_temperature(logits, setup['labels'])
    assert fitted['temperature'] == pytest.approx(t, rel=1e-4)
    assert abs(np.log(t)) > 0.1  # far enough from 1 to tell apart

    def nll(temp):
        p = torch.softmax(torch.as_tensor(logits) / temp, 1).numpy()
        return negative_log_likelihood(p, setup['labels'])

    # a minimum: both neighbours are worse
    assert nll(t) < nll(t * 1.05) and nll(t) < nll(t / 1.05)
    meta = torch.load(fitted['out'])['meta']['calibration']
    assert meta['temperature'] == fitted['temperature']
    assert set(meta['thresholds']) == {'min_confidence', 'max_energy',
                                       'max_feature_distance',
                                       'max_stage_distance'}
    # every backbone stage but the last, each with its Gaussian
    assert meta['stage_names'] and len(meta['stage_gaussians']) == len(
        meta['stage_names'])
    assert meta['feature_bank'].shape == (12, 64)
    assert meta['feature_bank'].dtype == torch.float16


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (4000, 4))
    probs = torch.softmax(torch.as_tensor(logits) / 2.5, 1).numpy()
    labels = np.array([rng.choice(4, p=p) for p in probs])
    from scipy.optimize import minimize_scalar

    def nll(log_t):
        p = torch.softmax(torch.as_tensor(logits) / np.exp(log_t), 1)
        return negative_log_likelihood(p.numpy(), labels)

    ref = np.exp(minimize_scalar(nll, bounds=(-3, 3), method='bounded',
                                 options=dict(xatol=1e-8)).x)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(ref, rel=1e-3)
    assert t == pytest.approx(2.5, rel=0.1)
    with pytest.raises(ValueError, match='logits'):
        fit_temperature(logits[:, 0], labels)


def test_calibrated_checkpoint_in_predict(setup, fitted, tools, tmp_path):
    t = fitted['temperature']
    meta = torch.load(fitted['out'])['meta']['calibration']
    th = meta['thresholds']
    rows = predict(setup['cfg'], fitted['out'], setup['images'],
                   device='cpu', progress=False)
    raw = predict(setup['cfg'], fitted['out'], setup['images'],
                  device='cpu', progress=False, calibrated=False)
    n_flagged = 0
    for r, r0 in zip(rows, raw):
        z = _logits(setup['model'], r['path'])
        np.testing.assert_allclose(r['scores'], torch.softmax(z / t, 0),
                                   atol=1e-5)
        np.testing.assert_allclose(r0['scores'], torch.softmax(z, 0),
                                   atol=1e-5)
        assert r['energy'] == pytest.approx(-torch.logsumexp(z, 0).item(),
                                            abs=1e-4)
        low = r['confidence'] < th['min_confidence']
        assert ('low confidence' in r['flag_reason']) == low
        assert ('energy' in r['flag_reason']) == (r['energy'] >
                                                   th['max_energy'])
        assert ('stage statistics' in r['flag_reason']) == (
            r['stage_distance'] > th['max_stage_distance'])
        n_flagged += bool(r['flag_reason'])
        # raw probabilities: the confidence threshold does not apply
        assert 'low confidence' not in r0['flag_reason']
    # the thresholds flag about the chosen shares of these (val) images
    assert 3 <= n_flagged <= 8
    out = tmp_path / 'p.csv'
    tool = tools.load('predict.py')
    assert tool.main([setup['cfg'], fitted['out'], *setup['images'],
                      '--out', str(out), '--no-progress']) == 0
    with open(out, newline='') as f:
        csv_rows = list(csv.DictReader(f))
    assert list(csv_rows[0])[-7:] == [
        'seg_fallback', 'flag_reason', 'confidence', 'energy',
        'feature_distance', 'stage_distance', 'error']
    assert [r['flag_reason'] for r in csv_rows] == \
        [r['flag_reason'] for r in rows]
    assert tool.main([setup['cfg'], fitted['out'], *setup['images'],
                      '--out', str(out), '--no-progress', '--no-flags']) == 0
    with open(out, newline='') as f:
        assert 'flag_reason' not in next(csv.DictReader(f))


def test_runner_test_uses_the_temperature(setup, fitted, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    t = fitted['temperature']
    dumps = {}
    for hook in (True, False):
        cfg = Config.fromfile(setup['cfg'])
        cfg.work_dir = str(tmp_path / f'w{int(hook)}')
        cfg.load_from = fitted['out']
        dump = str(tmp_path / f'preds{int(hook)}.pkl')
        cfg.test_evaluator = [dict(type='DumpResults', out_file_path=dump),
                              dict(type='CalibrationMetric')]
        # The runtime base declares the hook; without it, raw probabilities.
        cfg.custom_hooks = [dict(type='TemperatureScalingHook')] if hook \
            else []
        Runner.from_cfg(cfg).test()
        import mmengine
        dumps[hook] = {d['img_path']: d for d in mmengine.load(dump)}
    for path, d in dumps[True].items():
        z = _logits(setup['model'], path)
        np.testing.assert_allclose(d['pred_score'].numpy(),
                                   torch.softmax(z / t, 0), atol=1e-5)
        np.testing.assert_allclose(dumps[False][path]['pred_score'].numpy(),
                                   torch.softmax(z, 0), atol=1e-5)


def test_bad_flag_rate_is_named(fitted):
    with pytest.raises(SystemExit, match='confidnce=0.1'):
        fitted['tool'].parse_rates(['confidnce=0.1'])


def test_named_stages_keep_only_feature_maps(setup, tools, tmp_path):
    """--stages: a named module without a feature map (the head) is left
    out of the stored stages, and the checkpoint still predicts."""
    from mmdsp.apis import stage_modules
    first = stage_modules(setup['model'])[0]
    out = str(tmp_path / 'staged.pth')
    tools.load('analysis_tools/fit_temperature.py').main([
        setup['cfg'], setup['ckpt'], '--out', out, '--num-workers', '0',
        '--no-progress', '--no-test', '--device', 'cpu', '--stages', first,
        'head'
    ])
    meta = torch.load(out)['meta']['calibration']
    assert meta['stage_names'] == [first]
    assert len(meta['stage_gaussians']) == 1
    rows = predict(setup['cfg'], out, setup['images'][:3], device='cpu',
                   progress=False)
    assert all(r['stage_distance'] is not None for r in rows)
