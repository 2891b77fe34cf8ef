"""Before/after grid of LabKMeansSegment, like the paper's figure 3.

Each row is one class folder; each sample is shown as the original with
the mask outline (green; red outline on the whole image for a fallback) next
to the segmented image.

Example:
    python tools/visualization/vis_segment.py \
        ../shared/data/all_leukemia/Original work_dirs/vis_segment.png \
        --per-class 4 --cfg-options work_scale=0.5
"""
import argparse
import glob
import os.path as osp

import cv2
import numpy as np
from mmengine.config import DictAction

from mmdsp.datasets.blood_cells_all import IMG_EXTENSIONS
from mmdsp.datasets.transforms.lab_kmeans import LabKMeansSegment
from mmdsp.utils.fileio import imwrite_atomic



def pick_samples(src_root, per_class, offset):
    """``(class, [paths])`` per class folder, evenly spread in each."""
    classes = sorted(d for d in glob.glob(osp.join(src_root, '*'))
                     if osp.isdir(d))
    if not classes:
        classes = [src_root]
    picked = []
    for cdir in classes:
        files = sorted(f for f in glob.glob(osp.join(cdir, '*'))
                       if f.lower().endswith(IMG_EXTENSIONS))
        if not files:
            continue
        step = max(1, len(files) // per_class)
        picked.append(
            (osp.basename(cdir), files[offset % step::step][:per_class]))
    if not picked:
        raise FileNotFoundError(f'no images found under {src_root!r}')
    return picked


def render_pair(img, res, tile):
    """Original with outline | segmented, each resized to ``tile``."""
    over = img.copy()
    mask = res['fg_mask']
    if res['seg_fallback']:
        cv2.rectangle(over, (0, 0), (img.shape[1] - 1, img.shape[0] - 1),
                      (0, 0, 255), 3)
    else:
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(over, contours, -1, (0, 255, 0), 1)
    pair = [over, res['img']]
    return np.hstack([cv2.resize(p, (tile, tile)) for p in pair])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src_root', help='folder of class folders')
    parser.add_argument('out', help='output PNG')
    parser.add_argument('--per-class', type=int, default=4)
    parser.add_argument('--offset',
                        type=int,
                        default=0,
                        help='shift which images are sampled')
    parser.add_argument('--tile', type=int, default=224)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='LabKMeansSegment arguments, e.g. k=4 work_scale=0.5')
    args = parser.parse_args()

    seg = LabKMeansSegment(**args.cfg_options)
    rows = []
    for cls, paths in pick_samples(args.src_root, args.per_class, args.offset):
        tiles = []
        for path in paths:
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f'cannot read image {path!r}')
            tiles.append(render_pair(img, seg(dict(img=img)), args.tile))
        while len(tiles) < args.per_class:
            tiles.append(np.zeros_like(tiles[0]))
        row = np.hstack(tiles)
        label = np.full((24, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, f'{cls}: original + mask | segmented', (4, 17),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.vstack([label, row]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    imwrite_atomic(args.out, np.vstack(rows))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
