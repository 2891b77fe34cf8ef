"""The embedded demo (`make demo`): draw data, train, test, and leave pictures.

Usage::

    python tools/demo.py [--data data/synthetic_all] [--work-dir work_dirs/demo]

Every step is one of the project's ordinary commands, printed before it runs,
so the demo doubles as a walk-through of the tools:

1. ``tools/dataset_converters/make_synthetic_all.py``: the synthetic smears;
2. ``tools/train.py`` and ``tools/test.py`` with ``configs/demo/``;
3. ``tools/analysis_tools/fit_temperature.py``: temperature scaling and the
   reject thresholds, fitted on the validation split;
4. ``tools/visualization/plot_curves.py``, ``plot_confusion.py`` and
   ``plot_reliability.py``;
5. ``tools/predict.py``: a CSV for the test images, and a Grad-CAM overlay
   for the first test image of each class.

It ends with a short summary: the test accuracy, the time, and each file left
in the work_dir with what it shows.
"""
import argparse
import glob
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/demo/effdsp_synthetic.py'
# 500 smears per class (1400/400/200 split), drawn at 96 px with every class
# range halved about its centre (docs/training.md).
DRAW = ('--num-per-class', 500, '--size', 96, '--spread', 0.5)


def run(cmd, env, quiet=False):
    """Run one tool from the repository root; stop the demo if it fails."""
    shown = [shlex.quote(str(c)) for c in cmd[:12]]
    if len(cmd) > 12:
        shown.append(f'... ({len(cmd) - 12} more paths)')
    print('$ ' + ' '.join(shown), flush=True)
    out = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE if quiet else None,
                         stderr=subprocess.STDOUT if quiet else None,
                         text=True)
    if out.returncode:
        if quiet:
            print(out.stdout)
        sys.exit(f'demo: step failed (exit {out.returncode})')
    return out.stdout or ''


def test_list(data):
    """``(path, label)`` of every image in the data's test.txt."""
    with open(osp.join(data, 'test.txt')) as f:
        return [(osp.join(data, rel), int(label))
                for rel, label in (line.rsplit(maxsplit=1) for line in f
                                   if line.strip())]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/synthetic_all')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args(argv)
    start = time.perf_counter()
    py = sys.executable
    data, work = osp.abspath(args.data), osp.abspath(args.work_dir)
    env = dict(os.environ, MMDSP_DEMO_DATA=data)

    run([py, 'tools/dataset_converters/make_synthetic_all.py', data, *DRAW],
        env)
    run([py, 'tools/train.py', CONFIG, '--work-dir', work], env)
    trained = max((p for p in glob.glob(osp.join(work, 'best_*.pth'))
                   if not p.endswith('_calibrated.pth')), key=osp.getmtime)
    # Temperature and reject thresholds from the validation split; the
    # calibrated copy is what the remaining steps use.
    best = osp.splitext(trained)[0] + '_calibrated.pth'
    calibration = run([py, 'tools/analysis_tools/fit_temperature.py', CONFIG,
                       trained, '--out', best, '--no-test'], env, quiet=True)
    print(''.join(line for line in calibration.splitlines(True)
                  if line.startswith('Temperature T')), end='')
    preds = osp.join(work, 'test_predictions.pkl')
    run([py, 'tools/test.py', CONFIG, best, '--work-dir', work, '--out',
         preds], env)

    curves = osp.join(work, 'training_curves.png')
    confusion = osp.join(work, 'confusion_matrix.png')
    run([py, 'tools/visualization/plot_curves.py', work, '--out', curves,
         '--with-val'], env, quiet=True)
    run([py, 'tools/visualization/plot_confusion.py', work, '--out',
         confusion], env, quiet=True)
    reliability = osp.join(work, 'reliability.png')
    run([py, 'tools/visualization/plot_reliability.py', preds, '--out',
         reliability], env, quiet=True)
    tests = test_list(data)
    csv_path = osp.join(work, 'test_predictions.csv')
    run([py, 'tools/predict.py', CONFIG, best, '--out', csv_path,
         '--no-progress'] + [path for path, _ in tests], env, quiet=True)
    cam_dir = osp.join(work, 'gradcam')
    first_of_class = {}
    for path, label in tests:
        first_of_class.setdefault(label, path)
    run([py, 'tools/predict.py', CONFIG, best, '--out',
         osp.join(cam_dir, 'gradcam.csv'), '--cam-dir', cam_dir,
         '--no-progress'] + [first_of_class[k]
                             for k in sorted(first_of_class)], env, quiet=True)

    sys.path.insert(0, ROOT)
    from mmdsp.utils import work_dir_logs
    test = work_dir_logs.read_test_results(work)[-1]
    metrics = test['metrics']
    n_test = sum(sum(row) for row in metrics['confusion_matrix/result'])
    elapsed = time.perf_counter() - start
    files = [
        (curves, 'training loss and accuracy, validation accuracy per epoch'),
        (confusion, 'test confusion matrix: counts, recall of each class'),
        (reliability, 'calibration on the test set: confidence vs accuracy'),
        (csv_path, 'one row per test image: probabilities, prediction, flags'),
        (cam_dir, 'Grad-CAM overlay of one test image per class (*_cam.png)'),
        (trained, 'best checkpoint (validation accuracy)'),
        (best, 'the same with its fitted temperature and reject thresholds'),
        (preds, 'raw test predictions (tools/test.py --out)'),
    ]
    print('\n=== mmdsp demo summary ===')
    print('EfficientNet-DSP (B0 size, SAR, Dy-ODConv, DyDropBlock, '
          f'PolyFocal loss) on {DRAW[1] * 4} synthetic smears')
    print(f'test accuracy {metrics["accuracy/top1"]:.1f} % on {n_test} test '
          f'images (macro F1 {metrics["single-label/f1-score"]:.1f} %, '
          f'chance 25 %); {elapsed / 60:.1f} min in all')
    for path, what in files:
        print(f'  {osp.relpath(path)}: {what}')


if __name__ == '__main__':
    main()
