"""split_all.py on data sets other than ALL: other class names and counts,
k folds, bad input; and a re-foldered 2-class copy of the real data."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmdsp.datasets.synthetic import make_synthetic_folders

# Drawn smears look alike after alignment (one centred cell on a pink field,
# NCC 0.7-0.87 between distinct images); their planted second shots reach
# 0.99. The real-data threshold (0.6) would group everything.
NCC = ['--ncc-thr', '0.95']


@pytest.fixture(scope='module')
def split_all(tools):
    return tools.load('dataset_converters/split_all.py')


@pytest.fixture(scope='module')
def three_class(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('own') / 'cells')
    planted = make_synthetic_folders(
        root, {'neutrophil': 0, 'lymphoblast': 3, 'monocyte': 2},
        num_per_class=[12, 9, 7], size=32, exact_duplicates=3,
        shifted_duplicates=3)
    return root, planted


def _read(path):
    with open(path) as f:
        return [line.rsplit(' ', 1) for line in f.read().splitlines()]


def test_split_any_classes_with_planted_duplicates(split_all, three_class,
                                                   tmp_path, capsys):
    root, planted = three_class
    out = str(tmp_path / 'split')
    split_all.main([root, out, *NCC])
    printed = capsys.readouterr().out
    assert '34 images in 3 classes' in printed
    with open(osp.join(out, 'classes.txt')) as f:
        assert f.read() == 'lymphoblast\nmonocyte\nneutrophil\n'
    report = json.load(open(osp.join(out, 'duplicates.json')))
    found = sorted(sorted(g['files']) for g in report['groups'])
    assert found == sorted(sorted(g) for g in planted)
    where = {p: s for s in ('train', 'val', 'test')
             for p, _ in _read(osp.join(out, f'{s}.txt'))}
    assert len(where) == 34
    for group in planted:
        assert len({where[p] for p in group}) == 1
    names = ('lymphoblast', 'monocyte', 'neutrophil')
    for s in ('train', 'val', 'test'):
        for rel, lab in _read(osp.join(out, f'{s}.txt')):
            assert names[int(lab)] == rel.split('/')[0]


def test_folds_keep_groups_and_cover_every_image(split_all, three_class,
                                                 tmp_path, capsys):
    root, planted = three_class
    out = str(tmp_path / 'folds')
    split_all.main([root, out, '--folds', '3', '--test-ratio', '0.15',
                    *NCC])
    assert 'fold_2' in capsys.readouterr().out
    test = {p for p, _ in _read(osp.join(out, 'test.txt'))}
    vals = [{p for p, _ in _read(osp.join(out, f'fold_{k}', 'val.txt'))}
            for k in range(3)]
    everything = set().union(test, *vals)
    assert len(everything) == 34 and sum(map(len, vals)) + len(test) == 34
    for k in range(3):
        train = {p for p, _ in _read(osp.join(out, f'fold_{k}',
                                              'train.txt'))}
        assert train == everything - test - vals[k]
        assert os.path.isfile(osp.join(out, f'fold_{k}', 'classes.txt'))
        # Every fold validates every class.
        labels = {lab for _, lab in _read(osp.join(out, f'fold_{k}',
                                                   'val.txt'))}
        assert labels == {'0', '1', '2'}
    part = {p: k for k, v in enumerate(vals) for p in v}
    part.update({p: 'test' for p in test})
    for group in planted:
        assert len({part[p] for p in group}) == 1


def test_bad_input_names_the_folder_or_file(split_all, three_class,
                                            tmp_path, capsys):
    root, _ = three_class
    with pytest.raises(SystemExit, match=r"class 'monocyte' has 7"):
        split_all.main([root, str(tmp_path / 'o'), '--folds', '8', *NCC])
    one = tmp_path / 'one'
    make_synthetic_folders(str(one), {'only': 0}, 3, size=32)
    with pytest.raises(SystemExit, match=r'only one class folder.*only'):
        split_all.main([str(one), str(tmp_path / 'o')])
    (one / 'empty').mkdir()
    with pytest.raises(SystemExit, match=r"class folder .*empty' holds no"):
        split_all.main([str(one), str(tmp_path / 'o')])
    (one / 'empty' / 'scan.heic').write_bytes(b'\0' * 10)
    with pytest.raises(SystemExit, match=r"empty/scan\.heic' is not an "):
        split_all.main([str(one), str(tmp_path / 'o')])
    # A file with an image's name that holds no image is skipped by name.
    os.remove(one / 'empty' / 'scan.heic')
    (one / 'empty' / 'fake.jpg').write_bytes(b'not a jpeg at all' * 4)
    with pytest.raises(SystemExit, match=r"no readable image left .*empty"):
        split_all.main([str(one), str(tmp_path / 'o')])
    assert 'skipping unreadable empty/fake.jpg' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        split_all.main([root, str(tmp_path / 'o'), '--test-ratio', '0.1'])


def test_real_data_refoldered_two_classes(split_all, real_data, tmp_path,
                                          capsys):
    """Benign against Pro-B (the folder holding the 40 byte-identical
    pairs), re-foldered as a user would: symlinks under new names."""
    root = tmp_path / 'bm'
    for src, dst in (('Benign', 'benign'), ('Pro', 'malignant')):
        os.makedirs(root / dst)
        for name in os.listdir(osp.join(real_data, 'Original', src)):
            os.symlink(osp.join(real_data, 'Original', src, name),
                       root / dst / name)
    out = str(tmp_path / 'folds')
    split_all.main([str(root), out, '--folds', '3', '--test-ratio', '0.1'])
    printed = capsys.readouterr().out
    assert 'exact duplicates: 40 byte-identical pairs' in printed
    report = json.load(open(osp.join(out, 'duplicates.json')))
    assert all(f.startswith('malignant/')
               for p in report['exact_pairs'] for f in p)
    part = {}
    for k in range(3):
        for p, _ in _read(osp.join(out, f'fold_{k}', 'val.txt')):
            part[p] = k
    for p, _ in _read(osp.join(out, 'test.txt')):
        part[p] = 'test'
    assert len(part) == sum(len(os.listdir(root / d))
                            for d in ('benign', 'malignant'))
    for g in report['groups']:
        assert len({part[f] for f in g['files']}) == 1, g['files']
    sizes = [np.bincount([int(lab) for _, lab in _read(
        osp.join(out, f'fold_{k}', 'val.txt'))]) for k in range(3)]
    assert np.ptp([s[0] for s in sizes]) <= 5  # benign, groups of <= 5
