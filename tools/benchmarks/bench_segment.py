"""Speed and quality of LabKMeansSegment.

Speed: images per second of the segmentation alone (image already decoded)
on one core, and its ratio to ``cv2.imdecode`` of the same JPEGs measured in
the same run, interleaved round by round so machine load hits both alike.

Quality (``--quality``): per class, the share of images whose kept region
is between 0.5 % and 60 % of the image, plus the fallback count.

Examples:
    python tools/benchmarks/bench_segment.py
    python tools/benchmarks/bench_segment.py --quality --data-root \
        ../shared/data/all_leukemia/Original
"""
import argparse
import glob
import os
import os.path as osp
import time
from collections import defaultdict

import cv2
import numpy as np
from mmengine.config import DictAction

from mmdsp.datasets.transforms.lab_kmeans import LabKMeansSegment

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_ROOT = os.environ.get(
    'MMDSP_DATA_ROOT', osp.join(REPO, '..', 'shared', 'data', 'all_leukemia'))


def find_images(root):
    """JPEG/PNG files under ``root`` (or ``root/Original``), sorted."""
    if osp.isdir(osp.join(root, 'Original')):
        root = osp.join(root, 'Original')
    files = []
    for ext in ('jpg', 'jpeg', 'png', 'bmp'):
        files += glob.glob(osp.join(root, '**', f'*.{ext}'), recursive=True)
    return root, sorted(files)


def synthetic_jpegs(num, size, seed=0):
    """Smear-like JPEGs: light background, grey discs, purple discs."""
    rng = np.random.default_rng(seed)
    bufs = []
    for _ in range(num):
        img = np.empty((size, size, 3), np.uint8)
        img[:] = (235, 225, 240)
        for _ in range(30):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(img, c, int(size * 0.05), (200, 170, 180), -1)
        for _ in range(3):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(img, c, int(size * 0.08), (170, 60, 120), -1)
        img = cv2.add(img,
                      rng.normal(0, 4, img.shape).astype(np.int8),
                      dtype=cv2.CV_8U)
        bufs.append(cv2.imencode('.jpg', img)[1].tobytes())
    return bufs


def bench_speed(bufs, seg, rounds):
    arrays = [np.frombuffer(b, np.uint8) for b in bufs]
    imgs = [cv2.imdecode(a, cv2.IMREAD_COLOR) for a in arrays]
    dec_rates, seg_rates = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for a in arrays:
            cv2.imdecode(a, cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        for img in imgs:
            seg(dict(img=img))
        t2 = time.perf_counter()
        dec_rates.append(len(imgs) / (t1 - t0))
        seg_rates.append(len(imgs) / (t2 - t1))
    return float(np.median(seg_rates)), float(np.median(dec_rates))


def bench_quality(files, root, seg, low, high):
    per_class = defaultdict(lambda: [0, 0, 0])  # total, in range, fallback
    for path in files:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        cls = osp.relpath(path, root).split(os.sep)[0]
        stat = per_class[cls]
        stat[0] += 1
        if img is None:
            continue
        res = seg(dict(img=img))
        kept = np.count_nonzero(res['fg_mask']) / res['fg_mask'].size
        stat[1] += int(low <= kept <= high and not res['seg_fallback'])
        stat[2] += int(res['seg_fallback'])
    return dict(per_class)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=DEFAULT_ROOT)
    parser.add_argument('--num',
                        type=int,
                        default=200,
                        help='images for the speed test')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--quality',
                        action='store_true',
                        help='also report kept-area shares per class')
    parser.add_argument('--low', type=float, default=0.005)
    parser.add_argument('--high', type=float, default=0.60)
    parser.add_argument('--cfg-options',
                        nargs='+',
                        action=DictAction,
                        default={},
                        help='LabKMeansSegment arguments, e.g. work_scale=0.5')
    args = parser.parse_args()

    cv2.setNumThreads(1)
    seg = LabKMeansSegment(**args.cfg_options)
    root, files = find_images(args.data_root)
    if files:
        step = max(1, len(files) // args.num)
        chosen = files[::step][:args.num]
        bufs = [open(f, 'rb').read() for f in chosen]
        source = f'{len(bufs)} real images from {root}'
    else:
        bufs = synthetic_jpegs(args.num, 224)
        source = f'{len(bufs)} generated 224x224 images ({root} not found)'
    seg_rate, dec_rate = bench_speed(bufs, seg, args.rounds)
    print(f'speed on {source}, 1 OpenCV thread, median of {args.rounds} '
          f'rounds, options {args.cfg_options or "default"}:')
    print(f'  cv2.imdecode      : {dec_rate:8.1f} images/s')
    print(f'  LabKMeansSegment  : {seg_rate:8.1f} images/s')
    print(f'  ratio seg/imdecode: {seg_rate / dec_rate:8.3f} '
          f'(segmenting costs {dec_rate / seg_rate:.2f}x a JPEG decode)')

    if args.quality:
        if not files:
            print(f'quality: skipped, no images under {args.data_root}')
            return
        stats = bench_quality(files, root, seg, args.low, args.high)
        print(f'quality: share of images keeping {args.low:.1%}-'
              f'{args.high:.0%} of the image')
        tot = [0, 0, 0]
        for cls in sorted(stats):
            n, ok, fb = stats[cls]
            tot = [tot[0] + n, tot[1] + ok, tot[2] + fb]
            print(f'  {cls:10s} {ok:5d}/{n:<5d} = {ok / n:6.1%}  '
                  f'fallbacks {fb}')
        print(f'  {"all":10s} {tot[1]:5d}/{tot[0]:<5d} = '
              f'{tot[1] / max(tot[0], 1):6.1%}  fallbacks {tot[2]}')


if __name__ == '__main__':
    main()
