import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS

import mmdsp  # noqa: F401
from mmdsp.datasets.synthetic import draw_smear
from mmdsp.datasets.transforms import LabKMeansSegment

PINK = (215, 190, 235)  # BGR: pink plasma
WHITE = (245, 245, 250)
PURPLE = (160, 50, 110)  # BGR: Giemsa-stained nucleus
GREY_RBC = (190, 180, 200)


def smear(size=96, purple=True, seed=0):
    """Pink-and-white background, pale red cells, one purple disc."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = WHITE
    img[:, :size // 2] = PINK
    for cx, cy in [(15, 15), (80, 20), (20, 80), (75, 80)]:
        cv2.circle(img, (cx * size // 96, cy * size // 96), size // 12,
                   GREY_RBC, -1)
    disc = np.zeros((size, size), np.uint8)
    if purple:
        cv2.circle(disc, (size // 2, size // 2), size // 6, 255, -1)
        img[disc > 0] = PURPLE
    noise = rng.normal(0, 3, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    return img, disc


def iou(a, b):
    a, b = a > 0, b > 0
    return (a & b).sum() / max((a | b).sum(), 1)


def test_registered():
    seg = TRANSFORMS.build(dict(type='LabKMeansSegment'))
    assert isinstance(seg, LabKMeansSegment)


def test_purple_disc_iou_and_fill():
    img, disc = smear()
    res = LabKMeansSegment(fill_value=(1, 2, 3))(dict(img=img.copy()))
    assert res['seg_fallback'] is False
    assert res['fg_mask'].dtype == np.uint8
    assert res['fg_mask'].shape == img.shape[:2]
    assert iou(res['fg_mask'], disc) >= 0.9
    out = res['img']
    keep = res['fg_mask'] > 0
    np.testing.assert_array_equal(out[keep], img[keep])
    assert (out[~keep] == (1, 2, 3)).all()


def test_channel_order_respected():
    # Disc A is blue-purple (a*+68, b*-83), disc B orange (a*+38, b*+51).
    # Read with the wrong order, A turns red (b*+9) and B blue (b*-61).
    img = np.empty((96, 96, 3), np.uint8)
    img[:] = WHITE
    disc_a = np.zeros((96, 96), np.uint8)
    disc_b = np.zeros((96, 96), np.uint8)
    cv2.circle(disc_a, (28, 48), 14, 255, -1)
    cv2.circle(disc_b, (68, 48), 14, 255, -1)
    img[disc_a > 0] = (230, 40, 110)
    img[disc_b > 0] = (60, 120, 230)
    rgb = img[..., ::-1].copy()
    res_bgr = LabKMeansSegment(channel_order='bgr')(dict(img=img.copy()))
    res_rgb = LabKMeansSegment(channel_order='rgb')(dict(img=rgb.copy()))
    assert iou(res_bgr['fg_mask'], disc_a) >= 0.9
    np.testing.assert_array_equal(res_rgb['fg_mask'], res_bgr['fg_mask'])
    res_wrong = LabKMeansSegment(channel_order='bgr')(dict(img=rgb.copy()))
    assert iou(res_wrong['fg_mask'], disc_b) >= 0.9


def test_deterministic():
    img, _ = smear(seed=3)
    seg = LabKMeansSegment()
    m1 = seg(dict(img=img.copy()))['fg_mask']
    cv2.setRNGSeed(12345)  # another global state must not matter
    m2 = LabKMeansSegment()(dict(img=img.copy()))['fg_mask']
    np.testing.assert_array_equal(m1, m2)


def test_work_scale_close_to_full():
    img, disc = smear(size=128)
    res = LabKMeansSegment(work_scale=0.5)(dict(img=img))
    assert not res['seg_fallback']
    assert res['fg_mask'].shape == (128, 128)
    assert iou(res['fg_mask'], disc) >= 0.85


@pytest.mark.parametrize('name,img,reason', [
    ('gray2d', smear()[0][..., 0].copy(), 'no_stain'),
    ('one_channel', smear()[0][..., :1].copy(), 'no_stain'),
    ('two_channels', smear()[0][..., :2].copy(), 'unsupported_input'),
    ('1x1', np.full((1, 1, 3), PURPLE, np.uint8), 'too_few_pixels'),
    ('uniform', np.full((40, 40, 3), PURPLE, np.uint8), 'uniform'),
    ('no_stained_cell', smear(purple=False)[0], 'no_stain'),
    ('empty', np.zeros((0, 10, 3), np.uint8), 'too_few_pixels'),
])
def test_fallbacks_keep_whole_image(name, img, reason):
    res = LabKMeansSegment()(dict(img=img.copy()))
    assert res['seg_fallback'] is True, name
    assert res['seg_fallback_reason'] == reason, name
    np.testing.assert_array_equal(res['img'], img)
    assert res['fg_mask'].shape == img.shape[:2]
    assert (res['fg_mask'] == 255).all()


def test_rgba_and_float_inputs():
    img, disc = smear()
    bgra = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    res = LabKMeansSegment()(dict(img=bgra))
    assert res['img'].shape == bgra.shape and not res['seg_fallback']
    assert iou(res['fg_mask'], disc) >= 0.9
    assert (res['img'][res['fg_mask'] == 0] == 0).all()
    fimg = img.astype(np.float32)
    res = LabKMeansSegment()(dict(img=fimg))
    assert res['img'].dtype == np.float32
    assert iou(res['fg_mask'], disc) >= 0.9


def test_bad_arguments():
    with pytest.raises(ValueError, match='channel_order'):
        LabKMeansSegment(channel_order='hsv')
    with pytest.raises(ValueError, match='src_root'):
        LabKMeansSegment(cache_dir='x')
    with pytest.raises(ValueError, match='fill_value'):
        LabKMeansSegment(fill_value=(1, 2))(dict(img=smear()[0]))
    with pytest.raises(KeyError, match="'img'"):
        LabKMeansSegment()(dict())


def test_in_mmpretrain_pipeline(tmp_path):
    img, disc = smear()
    jpg = str(tmp_path / 'smear.jpg')
    cv2.imwrite(jpg, img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cfg = [
        dict(type='LoadImageFromFile'),
        dict(type='LabKMeansSegment'),
        dict(type='PackInputs', meta_keys=('img_path', 'seg_fallback')),
    ]
    # How an mmpretrain config builds its pipeline: in the mmpretrain scope.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(cfg)
    out = pipeline(dict(img_path=jpg, gt_label=1))
    inputs = out['inputs']
    assert tuple(inputs.shape) == (3, 96, 96)
    assert out['data_samples'].seg_fallback is False
    bg = inputs.numpy().transpose(1, 2, 0)[disc == 0]
    assert (bg == 0).mean() > 0.9


def test_cached_masks(tmp_path):
    img, disc = smear()
    src = tmp_path / 'src' / 'Pre'
    src.mkdir(parents=True)
    cv2.imwrite(str(src / 'a.png'), img)
    cache = tmp_path / 'cache' / 'Pre'
    cache.mkdir(parents=True)
    # A deliberately different mask proves it is read, not recomputed.
    fake = np.zeros(img.shape[:2], np.uint8)
    fake[:20, :20] = 255
    cv2.imwrite(str(cache / 'a_mask.png'), fake)
    seg = LabKMeansSegment(cache_dir=str(tmp_path / 'cache'),
                           src_root=str(tmp_path / 'src'))
    res = seg(dict(img=img.copy(), img_path=str(src / 'a.png')))
    np.testing.assert_array_equal(res['fg_mask'], fake)
    assert res['seg_fallback'] is False
    assert (res['img'][20:, 20:] == 0).all()

    # Missing mask: segment online, or raise on request.
    cv2.imwrite(str(src / 'b.png'), img)
    res = seg(dict(img=img.copy(), img_path=str(src / 'b.png')))
    assert iou(res['fg_mask'], disc) >= 0.9
    strict = LabKMeansSegment(cache_dir=str(tmp_path / 'cache'),
                              src_root=str(tmp_path / 'src'),
                              on_cache_miss='error')
    with pytest.raises(FileNotFoundError, match='b_mask.png'):
        strict(dict(img=img.copy(), img_path=str(src / 'b.png')))

    # A full mask is how segment_dataset.py stores a fallback.
    cv2.imwrite(str(cache / 'a_mask.png'), np.full_like(fake, 255))
    res = seg(dict(img=img.copy(), img_path=str(src / 'a.png')))
    assert res['seg_fallback'] is True
    np.testing.assert_array_equal(res['img'], img)

    # Wrong size or outside src_root: clear errors naming the file.
    cv2.imwrite(str(cache / 'a_mask.png'), np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match='a_mask.png'):
        seg(dict(img=img.copy(), img_path=str(src / 'a.png')))
    with pytest.raises(ValueError, match='not under src_root'):
        seg(dict(img=img.copy(), img_path=osp.join('/elsewhere', 'c.png')))


def test_real_smears_keep_a_plausible_region(real_data):
    # Regression guard on the cluster rule: on all 3256 images 99.9 % keep
    # 0.5 %-60 % of the field (docs/segmentation.md); here 10 per class.
    seg = LabKMeansSegment()
    for cls in ('Benign', 'Early', 'Pre', 'Pro'):
        folder = osp.join(real_data, 'Original', cls)
        names = sorted(os.listdir(folder))[::max(1,
                                                 len(os.listdir(folder)) //
                                                 10)][:10]
        ok = 0
        for name in names:
            img = cv2.imread(osp.join(folder, name))
            res = seg(dict(img=img))
            kept = (res['fg_mask'] > 0).mean()
            ok += int(not res['seg_fallback'] and 0.005 <= kept <= 0.6)
        assert ok >= 9, (cls, ok)


def _mask_vs_boxes(mask, cells, may_keep=()):
    """Share of the kept pixels inside the marked boxes, and the share of
    each cell box the mask covers. Boxes are (x0, y0, x1, y1), half-open."""
    kept = mask > 0
    inside = np.zeros_like(kept)
    for x0, y0, x1, y1 in tuple(cells) + tuple(may_keep):
        inside[y0:y1, x0:x1] = True
    covered = [kept[y0:y1, x0:x1].mean() for x0, y0, x1, y1 in cells]
    return (kept & inside).sum() / max(kept.sum(), 1), covered


# The lymphocyte of draw_smear(label, 224, default_rng([29, label])),
# marked by hand on the drawn images (cell with its cytoplasm). The
# generator places it anywhere in the central 30 % of the field, among 10
# to 22 red cells and on a pink background: the wrong cluster is elsewhere.
SYNTHETIC_CELLS = {
    0: (115, 100, 158, 140),
    1: (78, 72, 135, 129),
    2: (52, 96, 118, 161),
    3: (96, 75, 164, 146),
}


@pytest.mark.parametrize('label', sorted(SYNTHETIC_CELLS))
def test_synthetic_smear_keeps_the_marked_cell(label):
    img = draw_smear(label, 224, np.random.default_rng([29, label]))
    res = LabKMeansSegment()(dict(img=img))
    assert res['seg_fallback'] is False
    inside, (covered, ) = _mask_vs_boxes(res['fg_mask'],
                                         [SYNTHETIC_CELLS[label]])
    # Measured: 98.9-100 % of the mask in the box, 47-77 % of the box kept
    # (the nucleus, and the cytoplasm where it is dark enough).
    assert inside >= 0.95, inside
    assert covered >= 0.35, covered


# Real smears, boxes marked by hand around every stained cell
# (``cells``: each must be kept) and around debris the mask may keep
# (``may_keep``: a smudge cell).
REAL_CELLS = {
    'Early/WBC-Malignant-Early-001.jpg': dict(
        cells=[(80, 6, 109, 46), (84, 78, 113, 118), (55, 140, 84, 180),
               (132, 141, 162, 180), (180, 143, 208, 181),
               (214, 68, 224, 104)],
        may_keep=[(0, 158, 36, 214)]),
    'Pro/WBC-Malignant-Pro-001.jpg': dict(
        cells=[(42, 4, 68, 36), (112, 141, 140, 177), (138, 141, 164, 176)]),
    # One blast in a dense field of blue-grey red cells: the red cells are
    # kept (27 % of the field, 3 % of the mask on the blast), against
    # docs/segmentation.md ("the blue-purple red cells of Pre-B smears ...
    # stay out").
    'Pre/WBC-Malignant-Pre-001.jpg': dict(cells=[(92, 150, 122, 182)]),
}
KNOWN_WRONG = {'Pre/WBC-Malignant-Pre-001.jpg'}


@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.xfail(
        strict=True, reason='red cells kept in a dense Pre-B field'))
    if n in KNOWN_WRONG else n for n in sorted(REAL_CELLS)
])
def test_real_smear_keeps_the_marked_cells(name, real_data):
    img = cv2.imread(osp.join(real_data, 'Original', name))
    assert img is not None and img.shape == (224, 224, 3)
    res = LabKMeansSegment()(dict(img=img))
    assert res['seg_fallback'] is False
    inside, covered = _mask_vs_boxes(res['fg_mask'], **REAL_CELLS[name])
    # Measured on the two right ones: all of the mask in the boxes, every
    # cell box 34-49 % kept.
    assert inside >= 0.9, inside
    assert min(covered) >= 0.25, covered
