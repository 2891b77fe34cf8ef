"""tools/external_test.py: a 4-class model on a benign / malignant set."""
import csv
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmdsp  # noqa: F401
from mmdsp.datasets.synthetic import make_synthetic_folders

ALL = ['Benign', 'Early Pre-B', 'Pre-B', 'Pro-B']
PAIRS = ['Benign=benign', 'Early Pre-B=malignant', 'Pre-B=malignant',
         'Pro-B=malignant']


@pytest.fixture(scope='module')
def model_files(tmp_path_factory, tools):
    """An untrained 4-class tiny model whose checkpoint carries the ALL
    class names and a confidence threshold (so some images are flagged)."""
    tmp = tmp_path_factory.mktemp('ext')
    cfg_path = tmp / 'tiny4.py'
    cfg_path.write_text(
        f'_base_ = [{tools.config("tiny_resnet.py")!r}]\n'
        'model = dict(head=dict(num_classes=4))\n'
        'data_preprocessor = dict(num_classes=4)\n')
    cfg = Config.fromfile(str(cfg_path))
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    ckpt = tmp / 'tiny4.pth'
    calibration = dict(temperature=1.0,
                       thresholds=dict(min_confidence=0.3))
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=ALL),
                              calibration=calibration)), str(ckpt))
    data = tmp / 'bm'
    make_synthetic_folders(str(data), {'benign': 0, 'malignant': 3}, [5, 7],
                           size=32)
    return str(cfg_path), str(ckpt), str(data)


def test_external_test_maps_classes_and_flags(model_files, tools, tmp_path,
                                              capsys):
    config, ckpt, data = model_files
    tool = tools.load('external_test.py')
    out = str(tmp_path / 'out')
    rc = tool.main([config, ckpt, data, '--class-map', *PAIRS,
                    '--positive', 'malignant', '--out-dir', out,
                    '--no-progress'])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "4-class model ['Benign', 'Early Pre-B', 'Pre-B', 'Pro-B'] on " \
        "2 classes ['benign', 'malignant']" in printed
    report = json.load(open(osp.join(out, 'metrics.json')))
    assert report['all']['n'] == 12
    assert np.sum(report['all']['confusion'], 1).tolist() == [5, 7]
    assert 'clinical/sensitivity' in report['all']
    with open(osp.join(out, 'predictions.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    for r in rows:
        p = [float(r['p(benign)']), float(r['p(malignant)'])]
        assert sum(p) == pytest.approx(1, abs=1e-5)
        assert r['pred_class'] == ('benign' if p[0] > p[1] else 'malignant')
        assert r['true_class'] == osp.basename(osp.dirname(r['path']))
        # The predictor's reject rule, applied to the model's own classes.
        assert bool(r['flag_reason']) == (
            'confidence' in r['flag_reason'])
    flagged = sum(bool(r['flag_reason']) for r in rows)
    assert report['flagged'] == flagged
    if flagged < 12:
        assert report['accepted']['n'] == 12 - flagged


def test_external_test_refuses_an_incomplete_map(model_files, tools,
                                                 tmp_path):
    config, ckpt, data = model_files
    tool = tools.load('external_test.py')
    with pytest.raises(SystemExit, match=r"misses the model class\(es\) "
                       r"\['Pro-B'\]"):
        tool.main([config, ckpt, data, '--class-map', *PAIRS[:3],
                   '--out-dir', str(tmp_path), '--no-progress'])
    with pytest.raises(SystemExit, match=r"--positive \['tumour'\]"):
        tool.main([config, ckpt, data, '--class-map', *PAIRS,
                   '--positive', 'tumour', '--out-dir', str(tmp_path)])
