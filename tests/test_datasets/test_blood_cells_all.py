import logging
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

from mmdsp.datasets import BloodCellsALL
from mmdsp.datasets.blood_cells_all import (CLASS_ALIASES, check_image,
                                            resolve_class_folder)

PUBLIC = ('Benign', 'Early', 'Pre', 'Pro')
KAGGLE = ('Benign', '[Malignant] early Pre-B', '[Malignant] Pre-B',
          '[Malignant] Pro-B')


def _img(seed, size=16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


def make_tree(root, folders=PUBLIC, per_class=(2, 3, 1, 2)):
    for label, (folder, n) in enumerate(zip(folders, per_class)):
        os.makedirs(osp.join(root, folder), exist_ok=True)
        for i in range(n):
            cv2.imwrite(
                osp.join(root, folder, f'img{label}_{i}.jpg'),
                _img(label * 10 + i))
    return root


def labels_by_file(ds):
    return {
        osp.basename(ds.get_data_info(i)['img_path']):
        ds.get_data_info(i)['gt_label']
        for i in range(len(ds))
    }


@pytest.mark.parametrize('folders', [PUBLIC, KAGGLE])
def test_folder_layouts_map_to_same_labels(tmp_path, folders):
    make_tree(str(tmp_path), folders)
    ds = BloodCellsALL(data_root=str(tmp_path))
    assert ds.CLASSES == ('Benign', 'Early Pre-B', 'Pre-B', 'Pro-B')
    assert len(ds) == 8
    # The Kaggle names sort differently; labels must still follow aliases.
    for name, label in labels_by_file(ds).items():
        assert name.startswith(f'img{label}_')


def test_alias_table_case_insensitive():
    assert resolve_class_folder('BENIGN') == 0
    assert resolve_class_folder('[malignant]  EARLY  pre-b') == 1
    assert resolve_class_folder('Malignant_Pro-B') == 3
    assert resolve_class_folder('Original') is None
    for idx, names in CLASS_ALIASES.items():
        for n in names:
            assert resolve_class_folder(n.upper()) == idx


def test_ann_file_with_spaces_and_prefix(tmp_path):
    make_tree(str(tmp_path / 'imgs'), KAGGLE)
    ann = tmp_path / 'train.txt'
    ann.write_text('[Malignant] Pro-B/img3_1.jpg 3\n\nBenign/img0_0.jpg 0\n')
    ds = BloodCellsALL(
        data_root=str(tmp_path), data_prefix='imgs', ann_file='train.txt')
    assert labels_by_file(ds) == {'img3_1.jpg': 3, 'img0_0.jpg': 0}
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), 'imgs', '[Malignant] Pro-B', 'img3_1.jpg')


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match='nope'):
        BloodCellsALL(data_root=missing)


def test_unknown_class_folder_lists_accepted_names(tmp_path):
    make_tree(str(tmp_path))
    os.makedirs(tmp_path / 'Mystery')
    with pytest.raises(ValueError) as e:
        BloodCellsALL(data_root=str(tmp_path))
    msg = str(e.value)
    assert 'Mystery' in msg and "'early pre-b'" in msg and "'pro'" in msg


def test_empty_and_missing_class_folder(tmp_path):
    make_tree(str(tmp_path), per_class=(1, 1, 1, 1))
    for f in os.listdir(tmp_path / 'Pre'):
        os.remove(tmp_path / 'Pre' / f)
    with pytest.raises(ValueError, match=r'Pre.*holds no image'):
        BloodCellsALL(data_root=str(tmp_path))
    os.rmdir(tmp_path / 'Pre')
    with pytest.raises(ValueError,
                       match=r"no folder for class\(es\) \['Pre-B'\]"):
        BloodCellsALL(data_root=str(tmp_path))


def test_ann_file_errors_name_file_and_line(tmp_path):
    make_tree(str(tmp_path))
    ann = tmp_path / 'val.txt'
    ann.write_text('Benign/img0_0.jpg 0\nPro/ghost.jpg 3\n')
    with pytest.raises(FileNotFoundError, match=r'val\.txt:2: .*ghost\.jpg'):
        BloodCellsALL(data_root=str(tmp_path), ann_file='val.txt')
    ann.write_text('Benign/img0_0.jpg 0\nBenign/img0_1.jpg 7\n')
    with pytest.raises(ValueError, match=r'val\.txt:2: label 7'):
        BloodCellsALL(data_root=str(tmp_path), ann_file='val.txt')
    ann.write_text('Benign/img0_0.jpg\n')
    with pytest.raises(ValueError, match=r'val\.txt:1: expected'):
        BloodCellsALL(data_root=str(tmp_path), ann_file='val.txt')
    with pytest.raises(FileNotFoundError, match='absent.txt'):
        BloodCellsALL(data_root=str(tmp_path), ann_file='absent.txt')


def _plant_bad_files(root):
    good = cv2.imencode('.jpg', _img(99, 32))[1].tobytes()
    (root / 'Early' / 'corrupt.jpg').write_bytes(b'this is not a jpeg' * 10)
    (root / 'Pre' / 'truncated.jpg').write_bytes(good[:len(good) // 2])
    (root / 'Pro' / 'empty.jpg').write_bytes(b'')
    cv2.imwrite(str(root / 'Benign' / 'gray.png'), _img(1)[..., 0])
    rgba = np.dstack([_img(2), np.full((16, 16), 128, np.uint8)])
    cv2.imwrite(str(root / 'Early' / 'rgba.png'), rgba)
    cv2.imwrite(str(root / 'Pre' / 'tiny.png'), _img(3)[:1, :1])


class _Collect(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.text = ''

    def emit(self, record):
        self.text += record.getMessage() + '\n'


def test_bad_images_skipped_logged_and_counted(tmp_path):
    make_tree(str(tmp_path))
    _plant_bad_files(tmp_path)
    logger = MMLogger.get_current_instance()
    collect = _Collect()
    logger.addHandler(collect)
    try:
        ds = BloodCellsALL(
            data_root=str(tmp_path),
            pipeline=[dict(type='LoadImageFromFile')])
    finally:
        logger.removeHandler(collect)
    skipped = {osp.basename(p): r for p, r in ds.skipped_images}
    assert set(skipped) == {'corrupt.jpg', 'truncated.jpg', 'empty.jpg'}
    assert 'truncated JPEG' in skipped['truncated.jpg']
    assert 'empty file' in skipped['empty.jpg']
    assert 'skipped 3 of 14' in collect.text
    assert 'corrupt.jpg' in collect.text
    # Grayscale, RGBA and 1x1 files are kept and load as 3-channel BGR.
    names = labels_by_file(ds)
    assert {'gray.png', 'rgba.png', 'tiny.png'} <= set(names)
    for i in range(len(ds)):
        out = ds[i]
        img = out['inputs'] if 'inputs' in out else out['img']
        assert img.ndim == 3 and img.shape[2] == 3


def test_bad_images_error_mode_and_min_size(tmp_path):
    make_tree(str(tmp_path))
    _plant_bad_files(tmp_path)
    with pytest.raises(ValueError) as e:
        BloodCellsALL(data_root=str(tmp_path), on_bad_image='error')
    assert 'corrupt.jpg' in str(e.value) and 'truncated.jpg' in str(e.value)
    ds = BloodCellsALL(data_root=str(tmp_path), min_size=2)
    assert 'tiny.png' in {osp.basename(p) for p, _ in ds.skipped_images}
    # Without verification the bad files stay in the list.
    ds = BloodCellsALL(data_root=str(tmp_path), verify_images=False)
    assert len(ds) == 14


def test_check_image_decode_catches_bad_pixel_data(tmp_path):
    buf = bytearray(cv2.imencode('.png', _img(5, 64))[1].tobytes())
    # Header and IEND stay intact; the compressed pixel data is scrambled.
    start = buf.index(b'IDAT') + 10
    for k in range(start, start + 50):
        buf[k] ^= 0x5A
    path = str(tmp_path / 'x.png')
    with open(path, 'wb') as f:
        f.write(bytes(buf))
    assert check_image(path) is None
    assert 'cannot decode' in check_image(path, decode=True)


def test_bad_arguments(tmp_path):
    make_tree(str(tmp_path))
    with pytest.raises(ValueError, match='on_bad_image'):
        BloodCellsALL(data_root=str(tmp_path), on_bad_image='ignore')
    with pytest.raises(ValueError, match='verify_images'):
        BloodCellsALL(data_root=str(tmp_path), verify_images='yes')
