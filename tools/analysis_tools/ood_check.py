"""How often a calibrated checkpoint flags real and odd images.

    python tools/analysis_tools/ood_check.py CONFIG CKPT [--n-odd 40] \
        [--max-real 0] [--data-root DIR] [--split-file FILE] [--skip-real]

Runs mmdsp's predictor (the engine of tools/predict.py, so exactly its
``flag_reason``) on

* the real test split: ``$MMDSP_DATA_ROOT``, else
  ``../shared/data/all_leukemia/Original``, images listed in
  ``splits/all_leukemia/test.txt``;
* odd images made on the fly, never written to disk: synthetic smears
  (``mmdsp.datasets.synthetic.draw_smear``), photo crops (matplotlib's
  ``grace_hopper.jpg``, random crops, flips and scales) and single-cell
  close-ups (centre crops of real test images, zoomed 2-4x back to 224 px).

Prints one table row per set: the share flagged and by which reason. The
goal: at most 5 % of the real test images flagged, most odd images flagged.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

from mmdsp.apis import Predictor
from mmdsp.evaluation.ood import REASON_KINDS, reason_kinds
from mmdsp.evaluation.report import markdown_table

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REAL_GOAL = 5.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Flag rates on the real test split and odd image sets')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint, calibrated by '
                        'tools/analysis_tools/fit_temperature.py')
    parser.add_argument('--data-root', help='folder with Benign/ Early/ '
                        'Pre/ Pro/ (default: $MMDSP_DATA_ROOT, else '
                        '../shared/data/all_leukemia/Original)')
    parser.add_argument('--split-file', default=osp.join(
        REPO, 'splits', 'all_leukemia', 'test.txt'))
    parser.add_argument('--max-real', type=int, default=0,
                        help='a seeded subset of the real test images '
                        '(default 0: all)')
    parser.add_argument('--n-odd', type=int, default=40,
                        help='images per odd set (default 40)')
    parser.add_argument('--skip-real', action='store_true',
                        help='no real data: synthetic and photo sets only')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--device', help='e.g. cpu or cuda:0')
    parser.add_argument('--raw-probs', action='store_true',
                        help='ignore the checkpoint\'s temperature')
    return parser.parse_args(argv)


def default_data_root():
    return os.environ.get('MMDSP_DATA_ROOT') or osp.join(
        '..', 'shared', 'data', 'all_leukemia', 'Original')


def real_test_paths(data_root, split_file):
    """The real test split's image files (folder aliases resolved)."""
    from mmpretrain.registry import DATASETS
    if not osp.isdir(data_root):
        raise FileNotFoundError(
            f'real data root {data_root} not found: set MMDSP_DATA_ROOT or '
            '--data-root (or --skip-real)')
    if not osp.isfile(split_file):
        raise FileNotFoundError(f'split file {split_file} not found')
    ds = DATASETS.build(dict(type='BloodCellsALL', data_root=data_root,
                             ann_file=osp.abspath(split_file), pipeline=[],
                             lazy_init=False))
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def synthetic_set(n, rng):
    from mmdsp.datasets.synthetic import draw_smear
    return [draw_smear(i % 4, 224, rng) for i in range(n)]


def photo_set(n, rng):
    from matplotlib import cbook
    path = cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    photo = cv2.imread(str(path))
    if photo is None:
        raise FileNotFoundError(f'matplotlib sample photo {path} unreadable')
    h, w = photo.shape[:2]
    out = []
    for i in range(n):
        # the whole photo first, then crops of 25-100 % of its short side
        side = min(h, w) if i == 0 else int(min(h, w) * rng.uniform(.25, 1))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[y:y + side, x:x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        size = int(rng.choice([96, 224, 320]))
        out.append(np.ascontiguousarray(cv2.resize(crop, (size, size))))
    return out


def zoom_set(paths, n, rng):
    out = []
    for path in rng.permutation(paths)[:n]:
        img = cv2.imread(str(path))
        if img is None:
            raise FileNotFoundError(f'{path}: unreadable test image')
        h, w = img.shape[:2]
        zoom = rng.uniform(2, 4)
        ch, cw = int(h / zoom), int(w / zoom)
        crop = img[(h - ch) // 2:(h - ch) // 2 + ch,
                   (w - cw) // 2:(w - cw) // 2 + cw]
        out.append(cv2.resize(crop, (224, 224),
                              interpolation=cv2.INTER_CUBIC))
    return out


def summarise(name, rows):
    ok = [r for r in rows if not r['error']]
    n = len(ok)
    kinds = [reason_kinds(r['flag_reason']) for r in ok]
    share = {k: (sum(k in ks for ks in kinds) / n * 100 if n else np.nan)
             for k in REASON_KINDS}
    flagged = sum(bool(ks) for ks in kinds) / n * 100 if n else np.nan
    return dict(set=name, images=n, failed=len(rows) - n, flagged=flagged,
                **share)


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    predictor = Predictor(args.config, args.checkpoint, args.device,
                          calibrated=not args.raw_probs, flags=True)
    if not predictor.thresholds:
        print(f'warning: {args.checkpoint} has no fitted thresholds; only '
              'segmentation fallbacks are flagged (run '
              'tools/analysis_tools/fit_temperature.py first)',
              file=sys.stderr)
    results = []
    real = []
    if not args.skip_real:
        root = args.data_root or default_data_root()
        real = real_test_paths(root, args.split_file)
        subset = real
        if 0 < args.max_real < len(real):
            subset = list(rng.permutation(real)[:args.max_real])
        rows = predictor(subset, args.batch_size, progress=False)
        results.append(summarise('real test split', rows))
    sets = [('synthetic smears', synthetic_set(args.n_odd, rng)),
            ('photos (grace_hopper crops)', photo_set(args.n_odd, rng))]
    if real:
        sets.append(('real cells zoomed 2-4x', zoom_set(real, args.n_odd,
                                                        rng)))
    for name, images in sets:
        rows = predictor.predict_arrays(images, batch_size=args.batch_size)
        results.append(summarise(name, rows))

    header = ['image set', 'images', 'flagged (%)',
              'segmentation fell back (%)', 'low confidence (%)',
              'energy (%)', 'feature distance (%)', 'stage distance (%)']
    table = [[r['set'], r['images'], r['flagged'], r['seg_fallback'],
              r['confidence'], r['energy'], r['feature_distance'],
              r['stage_distance']]
             for r in results]
    thresholds = ', '.join(f'{k} = {v:.4f}'
                           for k, v in predictor.thresholds.items())
    print(f'checkpoint {args.checkpoint}: T = {predictor.temperature:.4f}; '
          f'thresholds: {thresholds or "none"}\n')
    print(markdown_table(header, table))
    if results and results[0]['set'] == 'real test split':
        rate = results[0]['flagged']
        verdict = 'met' if rate <= REAL_GOAL else 'NOT met'
        print(f'\nreal test images flagged: {rate:.2f} % (goal <= '
              f'{REAL_GOAL:.0f} %: {verdict})')
    for r in results:
        if r['failed']:
            print(f'{r["set"]}: {r["failed"]} images failed in the pipeline',
                  file=sys.stderr)
    return results


if __name__ == '__main__':
    main()
