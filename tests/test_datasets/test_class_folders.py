"""Any class-folder data set: scanning, class names, ClassFolderDataset."""
import os

import cv2
import numpy as np
import pytest

from mmdsp.datasets import ClassFolderDataset
from mmdsp.datasets.class_folders import (read_classes_file,
                                          scan_image_folders)


def _tree(root, classes=('Class B', 'Class A', 'Other'), n=3):
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(root / c / 'nested', exist_ok=True)
        for i in range(n):
            sub = 'nested/' if i == 0 else ''
            cv2.imwrite(str(root / c / f'{sub}{i}.png'),
                        rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    return root


def test_scan_sorted_folder_names_and_nested_images(tmp_path):
    classes, samples = scan_image_folders(str(_tree(tmp_path)))
    assert classes == ('Class A', 'Class B', 'Other')
    assert ('Class B/nested/0.png', 1) in samples
    assert len(samples) == 9
    assert {lab for _, lab in samples} == {0, 1, 2}


def test_scan_errors_name_the_folder_or_file(tmp_path):
    root = _tree(tmp_path / 'a', classes=('Only', ))
    with pytest.raises(ValueError, match=r"only one class folder.*Only"):
        scan_image_folders(str(root))
    loose = tmp_path / 'loose'
    loose.mkdir()
    cv2.imwrite(str(loose / 'x.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"no class folder.*'x\.png'"):
        scan_image_folders(str(loose))
    root = _tree(tmp_path / 'b')
    (root / 'Class A' / 'notes.txt').write_text('hello')
    with pytest.raises(ValueError,
                       match=r"Class A/notes\.txt' is not an image"):
        scan_image_folders(str(root))
    os.remove(root / 'Class A' / 'notes.txt')
    (root / 'Empty').mkdir()
    with pytest.raises(ValueError, match=r"class folder .*Empty' holds no"):
        scan_image_folders(str(root))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        scan_image_folders(str(tmp_path / 'nowhere'))


def test_classes_file(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('benign\nmalignant\n')
    assert read_classes_file(str(path)) == ('benign', 'malignant')
    path.write_text('a\nb\na\n')
    with pytest.raises(ValueError, match=r"\['a'\] twice"):
        read_classes_file(str(path))


def test_dataset_takes_names_from_the_split_and_checks_them(tmp_path):
    root = _tree(tmp_path / 'data')
    split = tmp_path / 'split'
    split.mkdir()
    (split / 'train.txt').write_text('Other/1.png 2\nClass A/2.png 0\n')
    (split / 'classes.txt').write_text('Class A\nClass B\nOther\n')
    ds = ClassFolderDataset(data_root=str(root),
                            ann_file=str(split / 'train.txt'))
    assert ds.metainfo['classes'] == ('Class A', 'Class B', 'Other')
    assert [d['gt_label'] for d in ds] == [2, 0]
    # The same names in another order would rename every label.
    with pytest.raises(ValueError, match=r'differ from .*classes\.txt'):
        ClassFolderDataset(data_root=str(root),
                           ann_file=str(split / 'train.txt'),
                           classes=['Class B', 'Class A', 'Other'])
    os.remove(split / 'classes.txt')
    with pytest.raises(ValueError, match='no class names'):
        ClassFolderDataset(data_root=str(root),
                           ann_file=str(split / 'train.txt'))
    ds = ClassFolderDataset(data_root=str(root),
                            ann_file=str(split / 'train.txt'),
                            classes=['a', 'b', 'c'])
    assert ds.metainfo['classes'] == ('a', 'b', 'c')
    (split / 'train.txt').write_text('Other/1.png 3\n')
    with pytest.raises(ValueError, match=r'train\.txt:1: label 3'):
        ClassFolderDataset(data_root=str(root),
                           ann_file=str(split / 'train.txt'),
                           classes=['a', 'b', 'c'])


def test_dataset_scans_folders_without_a_split(tmp_path):
    root = _tree(tmp_path)
    ds = ClassFolderDataset(data_root=str(root))
    assert ds.metainfo['classes'] == ('Class A', 'Class B', 'Other')
    assert len(ds) == 9
    with pytest.raises(ValueError, match='are not the class folders'):
        ClassFolderDataset(data_root=str(root), classes=['x', 'y', 'z'])
