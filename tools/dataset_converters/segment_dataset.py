"""Remove the background of a whole image tree offline (paper sec. 3.1).

Mirrors SRC_ROOT into OUT_ROOT: every image ``<rel>`` gets a segmented copy
``OUT_ROOT/<rel>`` (same name and format, so existing split files work with
``data_root=OUT_ROOT``) and its mask ``OUT_ROOT/<rel without ext>_mask.png``
(0 = removed, 255 = kept; an all-255 mask marks a fallback), which
``LabKMeansSegment(cache_dir=OUT_ROOT, src_root=SRC_ROOT)`` reads instead of
segmenting online. ``segment_stats.csv`` lists the kept share per image.

Resumable: images whose two outputs exist are skipped, writes are atomic, and
the settings are recorded in ``segment_meta.json`` so a rerun with other
settings is refused unless ``--overwrite``.

Example:
    python tools/dataset_converters/segment_dataset.py \
        ../shared/data/all_leukemia/Original data/all_leukemia_seg --workers 2
"""
import argparse
import os
import os.path as osp
from collections import defaultdict

import cv2
import numpy as np
from mmengine.config import DictAction

from mmdsp.datasets.blood_cells_all import IMG_EXTENSIONS
from mmdsp.datasets.transforms.lab_kmeans import LabKMeansSegment
from mmdsp.utils.fileio import (atomic_write_text, check_run_meta,
                                clean_temp_files, imwrite_atomic,
                                outputs_complete, run_jobs)

_SEG = None  # the worker's transform, built once per process


def _init(seg_cfg):
    global _SEG
    _SEG = LabKMeansSegment(**seg_cfg)


def list_images(src_root):
    """Relative paths of all images under ``src_root``, sorted."""
    if not osp.isdir(src_root):
        raise FileNotFoundError(f'SRC_ROOT {src_root!r} is not a folder')
    rels = []
    for folder, dirs, files in os.walk(src_root):
        dirs.sort()
        for name in sorted(files):
            if (name.lower().endswith(IMG_EXTENSIONS)
                    and not name.startswith('.')):
                rels.append(osp.relpath(osp.join(folder, name), src_root))
    return rels


def output_paths(out_root, rel, mask_suffix):
    return (osp.join(out_root, rel),
            osp.join(out_root,
                     osp.splitext(rel)[0] + mask_suffix))


def segment_one(task):
    """Segment one image; returns ``(rel, kept_share, reason, skipped)``."""
    src, rel, out_img, out_mask, overwrite, jpeg_quality = task
    if not overwrite and outputs_complete([out_img, out_mask]):
        mask = cv2.imread(out_mask, cv2.IMREAD_GRAYSCALE)
        if mask is not None:
            full = bool(mask.all())
            return (rel, float(np.count_nonzero(mask)) / mask.size,
                    'fallback' if full else '', True)
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read image {src!r}')
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    res = _SEG(dict(img=img, img_path=src))
    # Mask first, image last: the image's existence marks the job done.
    imwrite_atomic(out_mask, res['fg_mask'])
    imwrite_atomic(out_img, res['img'], jpeg_quality=jpeg_quality)
    kept = float(np.count_nonzero(res['fg_mask'])) / res['fg_mask'].size
    return rel, kept, res['seg_fallback_reason'] or '', False


def summarise(results, low=0.005, high=0.60):
    """Per top-level folder: count, fallbacks, share kept in [low, high]."""
    per = defaultdict(lambda: [0, 0, 0])
    for rel, kept, reason, _ in results:
        cls = rel.split(os.sep)[0] if os.sep in rel else '.'
        per[cls][0] += 1
        per[cls][1] += int(bool(reason))
        per[cls][2] += int(low <= kept <= high and not reason)
    return dict(per)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='LAB k-means background removal of an image tree')
    parser.add_argument('src_root', help='folder of class folders')
    parser.add_argument('out_root', help='output folder (mirrored tree)')
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--mask-suffix', default='_mask.png')
    parser.add_argument('--jpeg-quality', type=int, default=95)
    parser.add_argument('--overwrite',
                        action='store_true',
                        help='redo every image, even finished ones')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='LabKMeansSegment arguments, e.g. k=4 fill_value=255')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    src_root = osp.abspath(args.src_root)
    out_root = osp.abspath(args.out_root)
    if out_root == src_root or out_root.startswith(src_root + os.sep):
        raise ValueError('OUT_ROOT must not be SRC_ROOT or inside it')
    seg_cfg = dict(args.cfg_options)
    LabKMeansSegment(**seg_cfg)  # fail on bad options before any work
    rels = list_images(src_root)
    if not rels:
        raise FileNotFoundError(f'no images under SRC_ROOT {src_root!r}')
    os.makedirs(out_root, exist_ok=True)
    removed = clean_temp_files(out_root)
    if removed:
        print(f'removed {removed} temporary files of an interrupted run')
    check_run_meta(osp.join(out_root, 'segment_meta.json'),
                   dict(tool='segment_dataset',
                        seg_cfg=seg_cfg,
                        mask_suffix=args.mask_suffix,
                        jpeg_quality=args.jpeg_quality),
                   overwrite=args.overwrite)

    tasks = [(osp.join(src_root, rel), rel,
              *output_paths(out_root, rel, args.mask_suffix), args.overwrite,
              args.jpeg_quality) for rel in rels]
    results = run_jobs(segment_one,
                       tasks,
                       workers=args.workers,
                       initializer=_init,
                       initargs=(seg_cfg, ))
    lines = ['path,kept_share,fallback']
    lines += [f'{rel},{kept:.6f},{reason}' for rel, kept, reason, _ in results]
    atomic_write_text(osp.join(out_root, 'segment_stats.csv'),
                      '\n'.join(lines) + '\n')

    skipped = sum(r[3] for r in results)
    print(f'{len(results)} images: {len(results) - skipped} segmented, '
          f'{skipped} already done')
    print('class       images  fallbacks  kept 0.5%-60%')
    for cls, (n, fb, ok) in sorted(summarise(results).items()):
        print(f'{cls:10s} {n:7d} {fb:10d}  {ok / n:12.1%}')
    return results


if __name__ == '__main__':
    main()
