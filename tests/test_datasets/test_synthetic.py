import os
import os.path as osp

import numpy as np
import pytest

from mmdsp.datasets import BloodCellsALL
from mmdsp.datasets.synthetic import draw_smear, make_synthetic_all


def _files(root):
    out = {}
    for folder in sorted(os.listdir(root)):
        path = osp.join(root, folder)
        if osp.isdir(path):
            for f in sorted(os.listdir(path)):
                out[f'{folder}/{f}'] = open(osp.join(path, f), 'rb').read()
        else:
            out[folder] = open(path, 'rb').read()
    return out


def test_layout_counts_and_loading(tmp_path):
    counts = make_synthetic_all(
        str(tmp_path), num_per_class=(4, 5, 3, 8), size=48, seed=1)
    # 7:2:1 of (4, 5, 3, 8) by largest remainder, ties to the earlier split:
    # (3, 1, 0) (4, 1, 0) (2, 1, 0) (6, 1, 1).
    expected = (15, 4, 1)
    assert counts == {'total': 20, 'train': 15, 'val': 4, 'test': 1}
    assert sorted(os.listdir(tmp_path)) == [
        'Benign', 'Early', 'Pre', 'Pro', 'test.txt', 'train.txt', 'val.txt'
    ]
    assert len(os.listdir(tmp_path / 'Pro')) == 8
    seen = set()
    for split, n in zip(('train', 'val', 'test'), expected):
        ds = BloodCellsALL(
            data_root=str(tmp_path), ann_file=f'{split}.txt',
            pipeline=[dict(type='LoadImageFromFile')])
        assert len(ds) == n
        paths = {ds.get_data_info(i)['img_path'] for i in range(n)}
        assert not paths & seen
        seen |= paths
        img = ds[0]['img']
        assert img.shape == (48, 48, 3)
    # Folder-scan mode reads the same tree with the same labels.
    ds = BloodCellsALL(data_root=str(tmp_path))
    labels = np.bincount(ds.get_gt_labels(), minlength=4)
    assert labels.tolist() == [4, 5, 3, 8]


def test_deterministic_by_seed(tmp_path):
    make_synthetic_all(str(tmp_path / 'a'), num_per_class=3, size=48, seed=0)
    make_synthetic_all(str(tmp_path / 'b'), num_per_class=3, size=48, seed=0)
    make_synthetic_all(str(tmp_path / 'c'), num_per_class=3, size=48, seed=1)
    a, b, c = (_files(tmp_path / k) for k in 'abc')
    assert a == b
    assert a.keys() == c.keys()
    assert a['Pro/syn-Pro-0000.jpg'] != c['Pro/syn-Pro-0000.jpg']
    # An image does not depend on how many images are drawn.
    make_synthetic_all(str(tmp_path / 'd'), num_per_class=5, size=48, seed=0)
    d = _files(tmp_path / 'd')
    assert d['Early/syn-Early-0002.jpg'] == a['Early/syn-Early-0002.jpg']


def test_lymphocyte_grows_from_benign_to_pro():
    # Bluish pixels (blue well above red) are the lymphocyte: nucleus and
    # cytoplasm. Red cells and background are pink, so they do not count.
    area = []
    for label in range(4):
        vals = []
        for i in range(8):
            img = draw_smear(label, 96, np.random.default_rng([7, label, i]))
            b, r = img[..., 0].astype(int), img[..., 2].astype(int)
            vals.append((b - r > 30).mean())
        area.append(np.mean(vals))
    assert area[0] < area[1] < area[2] < area[3], area


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_per_class'):
        make_synthetic_all(str(tmp_path), num_per_class=(1, 2))
    with pytest.raises(ValueError, match='size'):
        make_synthetic_all(str(tmp_path), size=8)
    with pytest.raises(ValueError, match='label'):
        draw_smear(4)
