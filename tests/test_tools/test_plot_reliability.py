import numpy as np
import pytest
import torch
from mmengine.fileio import dump

from mmdsp.evaluation.functional import expected_calibration_error


def _dump(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    probs = torch.softmax(torch.as_tensor(rng.normal(0, 2, (n, 4))), 1)
    labels = rng.integers(0, 4, n)
    # what tools/test.py --out writes: DataSample dicts with tensors
    dump([dict(pred_score=p.float(), pred_label=p.argmax().view(1),
               gt_label=torch.tensor([int(y)]), img_path=f'img{i}.jpg',
               num_classes=4)
          for i, (p, y) in enumerate(zip(probs, labels))], path)
    return probs.float().numpy(), labels


def test_reliability_png_and_ece(tmp_path, tools, capsys):
    tool = tools.load('visualization/plot_reliability.py')
    probs, labels = _dump(str(tmp_path / 'preds.pkl'))
    out = tmp_path / 'rel.png'
    res = tool.main([str(tmp_path / 'preds.pkl'), '--out', str(out),
                     '--n-bins', '10'])
    assert res['ece'] == pytest.approx(
        expected_calibration_error(probs, labels, 10))
    assert res['bins']['count'].sum() == 60
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    printed = capsys.readouterr().out
    assert f'{res["ece"] * 100:.2f} %' in printed
    assert printed.count('\n| ') >= 10
    res = tool.main([str(tmp_path / 'preds.pkl'), '--out', str(out),
                     '--binning', 'mass', '--n-bins', '6'])
    assert set(res['bins']['count']) == {10}


def test_bad_dump_is_named(tmp_path, tools):
    tool = tools.load('visualization/plot_reliability.py')
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        tool.main([str(tmp_path / 'nope.pkl'), '--out', 'x.png'])
    dump([dict(pred_label=torch.tensor([1]))], str(tmp_path / 'bad.pkl'))
    with pytest.raises(KeyError,
                       match="bad.pkl: sample 0 has no 'pred_score'"):
        tool.main([str(tmp_path / 'bad.pkl'), '--out', 'x.png'])
