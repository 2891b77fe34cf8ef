import importlib.util
import json
import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest

from mmdsp.datasets.blood_cells_all import scan_class_folders
from mmdsp.datasets.duplicates import exact_duplicate_pairs, file_md5
from mmdsp.datasets.grouped_split import (grouped_stratified_split,
                                          split_targets)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDERS = ('Benign', 'Early', 'Pre', 'Pro')


def _load_tool():
    path = osp.join(REPO, 'tools', 'dataset_converters', 'split_all.py')
    spec = importlib.util.spec_from_file_location('split_all', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


split_all = _load_tool()


def _texture(seed, size=112):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (10, 10, 3)).astype(np.float32)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_tree(root, per_class=(8, 12, 11, 9)):
    """Distinct images plus planted duplicates; returns the planted groups."""
    for label, (folder, n) in enumerate(zip(FOLDERS, per_class)):
        os.makedirs(osp.join(root, folder))
        for i in range(n):
            big = _texture(label * 100 + i)
            cv2.imwrite(osp.join(root, folder, f'{i:03d}.jpg'), big[:96, :96])
    j = osp.join
    # Byte-identical copy.
    shutil.copy(j(root, 'Benign', '001.jpg'), j(root, 'Benign', 'copy.jpg'))
    # Re-encoded copy at a lower JPEG quality.
    img = cv2.imread(j(root, 'Early', '002.jpg'))
    cv2.imwrite(j(root, 'Early', 'reenc.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, 60])
    # The same field slightly shifted, by (4, 3) pixels: a pHash candidate.
    cv2.imwrite(j(root, 'Pre', 'shift.jpg'), _texture(200 + 3)[3:99, 4:100])
    # A panned field, shifted by (14, 10) pixels: the pHash misses it, the
    # neighbour search (next file in name order) finds it.
    cv2.imwrite(j(root, 'Pre', '007_pan.jpg'),
                _texture(200 + 7)[10:106, 14:110])
    # A near duplicate filed under another class: a label conflict.
    img = cv2.imread(j(root, 'Pro', '004.jpg'))
    cv2.imwrite(j(root, 'Benign', 'conflict.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, 80])
    return [{'Benign/001.jpg', 'Benign/copy.jpg'},
            {'Early/002.jpg', 'Early/reenc.jpg'},
            {'Pre/003.jpg', 'Pre/shift.jpg'},
            {'Pre/007.jpg', 'Pre/007_pan.jpg'},
            {'Pro/004.jpg', 'Benign/conflict.jpg'}]


def read_splits(out_dir):
    splits = {}
    for name in ('train', 'val', 'test'):
        with open(osp.join(out_dir, f'{name}.txt')) as f:
            splits[name] = [line.rsplit(' ', 1) for line in f.read().split(
                '\n') if line]
    return splits


def test_planted_duplicates_grouped_and_stratified(tmp_path, capsys):
    root, out = str(tmp_path / 'data'), str(tmp_path / 'out')
    planted = make_tree(root)
    split_all.main([root, out, '--ratios', '7', '2', '1', '--seed', '0'])
    printed = capsys.readouterr().out
    report = json.load(open(osp.join(out, 'duplicates.json')))

    found = [set(g['files']) for g in report['groups']]
    assert sorted(map(sorted, found)) == sorted(map(sorted, planted))
    assert report['exact_pairs'] == [['Benign/001.jpg', 'Benign/copy.jpg']]
    conflicts = [set(g['files']) for g in report['groups']
                 if g['label_conflict']]
    assert conflicts == [planted[4]]
    kinds = {frozenset((p['i'], p['j'])): p['kind']
             for p in report['near_pairs']}
    assert kinds[frozenset(planted[2])] == 'near'
    assert kinds[frozenset(planted[3])] == 'overlap'
    assert 'LABEL CONFLICT' in printed and 'per-class counts' in printed

    splits = read_splits(out)
    where = {p: s for s, rows in splits.items() for p, _ in rows}
    all_files = {rel for rel, _ in scan_class_folders(root)}
    assert set(where) == all_files  # every image exactly once
    assert sum(len(r) for r in splits.values()) == len(all_files)
    for group in planted:
        assert len({where[p] for p in group}) == 1, group
    # Per-class counts hit the largest-remainder targets.
    class_counts = [9 + 1, 13, 13, 9]  # Benign has copy.jpg + conflict.jpg
    targets = split_targets(class_counts, (7, 2, 1))
    for s, name in enumerate(('train', 'val', 'test')):
        counts = np.bincount([int(lab) for _, lab in splits[name]],
                             minlength=4)
        assert counts.tolist() == targets[s].tolist()
    # Labels come from the folder names.
    for rows in splits.values():
        for rel, lab in rows:
            assert FOLDERS.index(rel.split('/')[0]) == int(lab)


def test_deterministic_by_seed(tmp_path, capsys):
    root = str(tmp_path / 'data')
    make_tree(root)
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        split_all.main([root, str(tmp_path / name), '--seed', str(seed)])
    capsys.readouterr()
    a, b, c = (read_splits(str(tmp_path / k)) for k in 'abc')
    assert a == b
    assert a != c


def test_drop_conflicts_and_unreadable(tmp_path, capsys):
    root, out = str(tmp_path / 'data'), str(tmp_path / 'out')
    make_tree(root)
    with open(osp.join(root, 'Pre', 'broken.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 not really a jpeg')
    split_all.main([root, out, '--drop-conflicts'])
    printed = capsys.readouterr().out
    assert 'skipping unreadable Pre/broken.jpg' in printed
    listed = {p for rows in read_splits(out).values() for p, _ in rows}
    assert 'Pro/004.jpg' not in listed and 'Benign/conflict.jpg' not in listed
    assert 'Pre/broken.jpg' not in listed
    report = json.load(open(osp.join(out, 'duplicates.json')))
    assert report['unreadable'][0]['path'] == 'Pre/broken.jpg'
    assert [g['split'] for g in report['groups']
            if g['label_conflict']] == ['dropped']


def test_one_group_for_everything_is_an_error(tmp_path, capsys):
    """Images that all look alike form one group; the split must not come
    out with empty val/test files."""
    root, out = str(tmp_path / 'data'), str(tmp_path / 'out')
    field = _texture(0)
    for k, folder in enumerate(FOLDERS):
        os.makedirs(osp.join(root, folder))
        for i in range(3):
            d = k * 3 + i
            cv2.imwrite(osp.join(root, folder, f'{i}.jpg'),
                        field[d:d + 96, d:d + 96])
    with pytest.raises(SystemExit, match=r'no image left for the val and '
                       r'test split\(s\).*12 of 12 images'):
        split_all.main([root, out])
    capsys.readouterr()
    assert sorted(os.listdir(out)) == ['duplicates.json']
    report = json.load(open(osp.join(out, 'duplicates.json')))
    assert len(report['groups']) == 1


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit, match='does not exist'):
        split_all.main([str(tmp_path / 'none'), str(tmp_path / 'out')])
    with pytest.raises(SystemExit):
        split_all.main([str(tmp_path), str(tmp_path / 'o'), '--ratios', '0',
                        '1', '1'])


def test_grouped_split_properties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    groups = np.arange(300)
    groups[:60] = np.repeat(np.arange(20), 3)  # twenty groups of three
    assign = grouped_stratified_split(labels, groups, (7, 2, 1), seed=3)
    for g in range(20):
        assert len(set(assign[groups == g])) == 1
    # Groups are spread, not all put into the largest split.
    assert len(set(assign[:60].tolist())) == 3
    targets = split_targets(np.bincount(labels), (7, 2, 1))
    for s in range(3):
        got = np.bincount(labels[assign == s], minlength=3)
        assert np.abs(got - targets[s]).max() <= 2
    assign0 = grouped_stratified_split(labels, groups, (8, 2, 0), seed=3)
    assert (assign0 != 2).all()
    assert (grouped_stratified_split(labels, groups, (7, 2, 1), seed=3) ==
            assign).all()


def test_split_targets_largest_remainder():
    assert split_targets([504, 10], (7, 2, 1)).tolist() == [[353, 7],
                                                           [101, 2],
                                                           [50, 1]]
    with pytest.raises(ValueError, match='ratios'):
        split_targets([5], (0, 0, 0))


def _real_root():
    env = os.environ.get('MMDSP_DATA_ROOT')
    base = env or osp.join(REPO, '..', 'shared', 'data', 'all_leukemia')
    return osp.join(base, 'Original'), osp.join(base, 'README.md')


def test_real_data_exact_pro_pairs():
    root, readme = _real_root()
    if not osp.isdir(root):
        pytest.skip(f'real ALL data not found at {root} (set MMDSP_DATA_ROOT '
                    'to the all_leukemia folder)')
    samples = scan_class_folders(root)
    paths = [rel for rel, _ in samples]
    digests = [file_md5(osp.join(root, p)) for p in paths]
    found = {(paths[i], paths[j]) for i, j in exact_duplicate_pairs(digests)}
    expected = {(f'Pro/WBC-Malignant-Pro-{a}.jpg',
                 f'Pro/WBC-Malignant-Pro-{b}.jpg')
                for a, b in re.findall(r'(\d{3})\+(\d{3})',
                                       open(readme).read())}
    assert len(expected) == 40
    assert found == expected
