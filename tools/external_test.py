"""Test a trained classifier on an external class-folder data set whose
classes differ from the model's, through a declared class map.

    python tools/external_test.py CONFIG CHECKPOINT DATA_ROOT \\
        --class-map 'Benign=benign' 'Early Pre-B=malignant' \\
                    'Pre-B=malignant' 'Pro-B=malignant' \\
        --positive malignant --out-dir work_dirs/external

DATA_ROOT holds one folder per class (the data's classes, as in
``split_all.py``). ``--class-map`` maps every model class to one data class
(pairs, or a JSON file); the data class probabilities are the sums over their
model classes (:mod:`mmdsp.evaluation.class_map`). ``--positive`` names the
data class(es) that form the clinical view's positive group. Images are run
through :class:`mmdsp.apis.Predictor`, so a checkpoint calibrated by
``fit_temperature.py`` gives calibrated probabilities and reject flags; the
metrics are reported on all images and on those not flagged. Writes
``OUT_DIR/predictions.csv`` and ``OUT_DIR/metrics.json``; exit code 1 when an
image failed. What such a number means: ``docs/own_data.md``.
"""
import argparse
import csv
import json
import os
import os.path as osp
import sys

import numpy as np

from mmdsp.apis import Predictor
from mmdsp.datasets.blood_cells_all import scan_dataset_folders
from mmdsp.datasets.class_folders import check_image
from mmdsp.evaluation.class_map import (class_map_indices, load_class_map,
                                        map_probs, mapped_metrics)
from mmdsp.evaluation.report import fmt, markdown_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test a classifier on a data set with other classes, '
        'through a class map')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('data_root', help='folder of class folders')
    parser.add_argument(
        '--class-map',
        nargs='+',
        required=True,
        metavar='MODEL=DATA',
        help="'model class=data class' pairs, or one JSON file of them")
    parser.add_argument(
        '--positive',
        nargs='+',
        default=[],
        metavar='DATA_CLASS',
        help='data class(es) of the positive group of the clinical view '
        '(sensitivity, specificity, ...); default: no clinical view')
    parser.add_argument('--out-dir', required=True,
                        help='where predictions.csv and metrics.json go')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--device', help='e.g. cpu or cuda:0')
    parser.add_argument('--raw-probs', action='store_true',
                        help="ignore the checkpoint's temperature")
    parser.add_argument('--no-flags', action='store_true',
                        help='do not apply the reject flags')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def _summary_rows(results, classes, positive):
    keys = ['n', 'accuracy', 'accuracy 95% CI', 'precision', 'recall', 'f1']
    keys += [f'recall/{c}' for c in classes]
    keys += [f'auroc/{c}' for c in classes]
    if positive:
        keys += [f'clinical/{k}' for k in ('sensitivity', 'specificity',
                                          'ppv', 'npv', 'auroc')]
    rows = []
    for k in keys:
        cells = [k]
        for res in results:
            if res is None:
                cells.append('—')
            elif k == 'accuracy 95% CI':
                cells.append(f"{fmt(res['accuracy_low'])}-"
                             f"{fmt(res['accuracy_high'])}")
            else:
                cells.append(res[k] if isinstance(res[k], str) else
                             fmt(res[k]))
        rows.append(cells)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        classes, samples = scan_dataset_folders(args.data_root)
        class_map = load_class_map(args.class_map)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    unknown = [p for p in args.positive if p not in classes]
    if unknown:
        sys.exit(f'error: --positive {unknown} are not classes of '
                 f'{args.data_root} {list(classes)}')
    positive = [classes.index(p) for p in args.positive]

    paths, labels, failed = [], [], []
    for rel, label in samples:
        path = osp.join(args.data_root, rel)
        reason = check_image(path)
        if reason is None:
            paths.append(path)
            labels.append(label)
        else:
            failed.append((path, reason))
    predictor = Predictor(args.config, args.checkpoint, args.device,
                          calibrated=not args.raw_probs,
                          flags=False if args.no_flags else None)
    try:
        index = class_map_indices(class_map, predictor.classes, classes)
    except ValueError as e:
        sys.exit(f'error: {e}')
    rows = predictor(paths, args.batch_size,
                     progress=not args.no_progress)
    ok = [i for i, r in enumerate(rows) if not r['error']]
    failed += [(rows[i]['path'], rows[i]['error']) for i in
               range(len(rows)) if rows[i]['error']]
    if not ok:
        sys.exit(f'error: no image of {args.data_root} could be classified')
    model_probs = np.stack([rows[i]['scores'] for i in ok])
    probs = map_probs(model_probs, index, len(classes))
    y = np.array([labels[i] for i in ok])
    flagged = np.array([bool(rows[i]['flag_reason']) for i in ok])
    results = dict(all=mapped_metrics(probs, y, classes, positive))
    accepted = ~flagged
    results['accepted'] = mapped_metrics(
        probs[accepted], y[accepted], classes, positive) \
        if predictor.flags and accepted.any() else None

    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = osp.join(args.out_dir, 'predictions.csv')
    with open(csv_path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['path', 'true_class', 'pred_class', 'model_class',
                         *[f'p({c})' for c in classes], 'flag_reason'])
        for j, i in enumerate(ok):
            writer.writerow([rows[i]['path'], classes[y[j]],
                             classes[int(probs[j].argmax())],
                             rows[i]['pred_class'],
                             *[f'{p:.6f}' for p in probs[j]],
                             rows[i]['flag_reason']])
    report = dict(
        config=args.config, checkpoint=args.checkpoint,
        data_root=osp.abspath(args.data_root),
        model_classes=list(predictor.classes), data_classes=list(classes),
        class_map=class_map, positive=list(args.positive),
        flags=predictor.flags, flagged=int(flagged.sum()),
        failed=[dict(path=p, error=e) for p, e in failed], **results)
    with open(osp.join(args.out_dir, 'metrics.json'), 'w') as f:
        json.dump(report, f, indent=1)

    print(f'{len(predictor.classes)}-class model {list(predictor.classes)} '
          f'on {len(classes)} classes {list(classes)} of {args.data_root}')
    print('class map: ' + '; '.join(f'{k} -> {v}'
                                    for k, v in class_map.items()))
    print(f'{len(ok)} images classified, {len(failed)} failed; ' + (
        f'{int(flagged.sum())} flagged not to be judged by the model '
        '(reject thresholds of the checkpoint)' if predictor.flags else
        'no reject flags (the checkpoint has no fitted thresholds, or '
        '--no-flags)'))
    print()
    print(markdown_table(['metric (%)', 'all images', 'not flagged'],
                         _summary_rows([results['all'], results['accepted']],
                                       classes, positive)))
    print('\nconfusion (rows: true, columns: predicted), all images:')
    print(markdown_table(['true \\ pred', *classes],
                         [[c, *map(str, r)] for c, r in
                          zip(classes, results['all']['confusion'])]))
    for p, e in failed:
        print(f'failed: {p}: {e}', file=sys.stderr)
    print(f'\nwrote {csv_path} and metrics.json')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
