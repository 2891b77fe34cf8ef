"""Grouped k-fold cross-validation with our tools/train.py and tools/test.py.

    python tools/dataset_converters/split_all.py DATA_ROOT SPLIT_DIR --folds 5
    python tools/kfold.py CONFIG --folds 5 --split-dir SPLIT_DIR \\
        [--work-dir work_dirs/kfold/NAME] [--test] [--cfg-options ...]
    python tools/kfold.py --compare WORK_DIR_A WORK_DIR_B

For each fold k the model of CONFIG is trained on ``SPLIT_DIR/fold_k/
train.txt`` and its last checkpoint tested on ``fold_k/val.txt``, the fold it
never saw (``--cfg-options`` point the config's three loaders at them). The
last checkpoint, not the best on that fold, and no validation while training
(``--validate`` turns it on, for the curves only): the held-out fold must not
choose anything, or its score is optimistic. ``--test`` also tests each
fold's model on the fixed ``SPLIT_DIR/test.txt``.

Resumable: a finished fold (``WORK_DIR/fold_k/fold_result.json``) is
skipped, an interrupted training resumes from its last checkpoint; rerun the
same command. The summary (``WORK_DIR/kfold_summary.json`` and ``.md``):
each metric per fold, mean +- std over folds, and pooled over all
out-of-fold predictions with a 95 % bootstrap interval
(:mod:`mmdsp.evaluation.kfold`); the clinical view follows the config's
``BenignVsMalignant`` groups. ``--compare`` puts two such runs side by side
with the paired bootstrap of their difference on the same images.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Grouped k-fold cross-validation (train and test each '
        'fold, then summarise)')
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument('--folds', type=int, help='number of folds K')
    parser.add_argument('--split-dir',
                        help='OUT_DIR of split_all.py --folds K')
    parser.add_argument('--work-dir',
                        help='default: work_dirs/kfold/<config name>')
    parser.add_argument('--test', action='store_true',
                        help='also test every fold model on '
                        'SPLIT_DIR/test.txt')
    parser.add_argument('--validate', action='store_true',
                        help='validate on the held-out fold while training '
                        '(curves only; the last checkpoint is tested)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to tools/train.py and tools/test.py')
    parser.add_argument('--compare', nargs=2, metavar=('WORK_A', 'WORK_B'),
                        help='compare two finished runs instead')
    args = parser.parse_args(argv)
    if args.compare:
        return args
    if not args.config or args.folds is None or not args.split_dir:
        parser.error('CONFIG, --folds and --split-dir are required (or '
                     '--compare WORK_A WORK_B)')
    if args.folds < 2:
        parser.error(f'--folds must be at least 2, got {args.folds}')
    for k in range(args.folds):
        for name in ('train.txt', 'val.txt'):
            path = osp.join(args.split_dir, f'fold_{k}', name)
            if not osp.isfile(path):
                parser.error(
                    f'{path} does not exist: split the data with '
                    f'split_all.py DATA_ROOT {args.split_dir} --folds '
                    f'{args.folds}')
    if args.test and not osp.isfile(osp.join(args.split_dir, 'test.txt')):
        parser.error(f'--test: {args.split_dir}/test.txt does not exist '
                     '(split_all.py --folds K --test-ratio R writes it)')
    args.work_dir = args.work_dir or osp.join(
        'work_dirs', 'kfold', osp.splitext(osp.basename(args.config))[0])
    return args


def load_config(args):
    """The merged config, for the epochs and the clinical groups."""
    import mmdsp  # noqa: F401  (the mmdsp:: bases)
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o',
                                               *args.cfg_options]).o)
    return cfg


def clinical_positive(cfg, classes):
    """Positive class indices of the config's BenignVsMalignant, or None."""
    from mmdsp.evaluation.metrics import BenignVsMalignant
    evaluators = cfg.get('test_evaluator') or []
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    for item in evaluators:
        if item.get('type') in ('BenignVsMalignant',
                                'mmdsp.BenignVsMalignant'):
            kwargs = {k: v for k, v in item.items() if k != 'type'}
            return BenignVsMalignant(**kwargs).resolve(list(classes))
    return None


def run_logged(cmd, log_path):
    """Run a tool; its output goes to ``log_path``; raise on failure."""
    with open(log_path, 'a') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log_path) as f:
            tail = f.read()[-1500:]
        sys.exit(f'{tail}\nerror: {" ".join(cmd[1:3])} failed (exit '
                 f'{proc.returncode}); full log: {log_path}')


def loader_options(ann_train, ann_val, ann_test):
    return [f'train_dataloader.dataset.ann_file={osp.abspath(ann_train)}',
            f'val_dataloader.dataset.ann_file={osp.abspath(ann_val)}',
            f'test_dataloader.dataset.ann_file={osp.abspath(ann_test)}']


def run_fold(k, args, max_epochs):
    """Train and test fold ``k`` unless done; returns its result dict."""
    fold_work = osp.join(args.work_dir, f'fold_{k}')
    result_path = osp.join(fold_work, 'fold_result.json')
    if osp.isfile(result_path):
        print(f'fold {k}: done before, {result_path}')
        with open(result_path) as f:
            return json.load(f)
    os.makedirs(fold_work, exist_ok=True)
    fold_split = osp.join(args.split_dir, f'fold_{k}')
    opts = loader_options(osp.join(fold_split, 'train.txt'),
                          osp.join(fold_split, 'val.txt'),
                          osp.join(fold_split, 'val.txt'))
    py, log = sys.executable, osp.join(fold_work, 'kfold.log')
    last = osp.join(fold_work, f'epoch_{max_epochs}.pth')
    minutes_train = 0.0
    if not osp.isfile(last):
        cmd = [py, osp.join(REPO, 'tools', 'train.py'), args.config,
               '--work-dir', fold_work]
        if osp.isfile(osp.join(fold_work, 'last_checkpoint')):
            cmd.append('--resume')
        # Not MMPretrain's --no-validate: it drops the val loader, and a
        # user's `val_dataloader.x=...` option would then fail to merge.
        train_opts = opts if args.validate else opts + [
            f'train_cfg.val_begin={max_epochs + 1}']
        print(f'fold {k}: training ({log})', flush=True)
        t0 = time.time()
        run_logged(cmd + ['--cfg-options', *train_opts, *args.cfg_options],
                   log)
        minutes_train = (time.time() - t0) / 60
        if not osp.isfile(last):
            sys.exit(f'error: fold {k} trained but {last} is missing; does '
                     'the config save a checkpoint every epoch?')
    print(f'fold {k}: testing on its held-out fold', flush=True)
    t0 = time.time()
    oof = osp.join(fold_work, 'oof.pkl')
    run_logged([py, osp.join(REPO, 'tools', 'test.py'), args.config, last,
                '--work-dir', osp.join(fold_work, 'test_oof'), '--out', oof,
                '--cfg-options', *opts, *args.cfg_options], log)
    minutes_test = (time.time() - t0) / 60
    result = dict(fold=k, checkpoint=last, oof=oof,
                  minutes_train=minutes_train, minutes_test=minutes_test)
    if args.test:
        test_opts = loader_options(
            osp.join(fold_split, 'train.txt'),
            osp.join(fold_split, 'val.txt'),
            osp.join(args.split_dir, 'test.txt'))
        result['test'] = osp.join(fold_work, 'test.pkl')
        run_logged([py, osp.join(REPO, 'tools', 'test.py'), args.config,
                    last, '--work-dir', osp.join(fold_work, 'test_fixed'),
                    '--out', result['test'], '--cfg-options', *test_opts,
                    *args.cfg_options], log)
    with open(result_path, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'fold {k}: {minutes_train:.1f} min training, '
          f'{minutes_test:.1f} min testing', flush=True)
    return result


def _cell(mean, std):
    return '—' if np.isnan(mean) else f'{mean:.2f} ± {std:.2f}'


def _ci(est, low, high):
    return '—' if np.isnan(est) else f'{est:.2f} [{low:.2f}, {high:.2f}]'


def summary_table(summary, k):
    from mmdsp.evaluation.kfold import METRICS
    from mmdsp.evaluation.report import fmt, markdown_table
    rows = []
    for m in METRICS:
        if np.isnan(summary['mean'][m]):
            continue
        rows.append([m] + [fmt(f[m]) for f in summary['per_fold']] + [
            _cell(summary['mean'][m], summary['std'][m]),
            _ci(summary['pooled'][m], summary['pooled_low'][m],
                summary['pooled_high'][m])])
        if 'test_mean' in summary:
            rows.append([f'test {m}'] + [fmt(f[m]) for f in
                                         summary['test_per_fold']] +
                        [_cell(summary['test_mean'][m],
                               summary['test_std'][m]), '—'])
    minutes = [r['minutes_train'] + r['minutes_test']
               for r in summary['folds']]
    rows.append(['minutes'] + [f'{m:.1f}' for m in minutes] +
                [_cell(float(np.mean(minutes)), float(np.std(minutes,
                                                               ddof=1))),
                 '—'])
    return markdown_table(
        ['metric (%)', *[f'fold {i}' for i in range(k)], 'mean ± std',
         f'pooled OOF (n={summary["n"]}) [95% CI]'], rows)


def summarize(args, results, positive):
    from mmdsp.evaluation.dumps import load_predictions
    from mmdsp.evaluation.kfold import fold_metrics, summarize_folds
    folds = [load_predictions(r['oof']) for r in results]
    summary = summarize_folds(folds, positive)
    if args.test:
        tests = [fold_metrics(**{k: v for k, v in load_predictions(
            r['test']).items() if k != 'img_paths'}, positive=positive)
            for r in results]
        summary['test_per_fold'] = tests
        table = np.array([[t[m] for m in tests[0]] for t in tests])
        summary['test_mean'] = dict(zip(tests[0], table.mean(0)))
        summary['test_std'] = dict(zip(tests[0], table.std(0, ddof=1)))
    summary.update(config=args.config, split_dir=osp.abspath(args.split_dir),
                   cfg_options=args.cfg_options, folds=results,
                   positive=positive)
    text = summary_table(summary, args.folds)
    with open(osp.join(args.work_dir, 'kfold_summary.json'), 'w') as f:
        json.dump(summary, f, indent=1, default=float)
    with open(osp.join(args.work_dir, 'kfold_summary.md'), 'w') as f:
        f.write(f'{args.config}, {args.folds} folds of {args.split_dir}\n\n'
                f'{text}\n')
    print(f'\n{args.config}: {args.folds}-fold cross-validation\n{text}')
    print(f'\nwrote {args.work_dir}/kfold_summary.json and .md')


def compare(work_a, work_b):
    from mmdsp.evaluation.dumps import load_predictions
    from mmdsp.evaluation.kfold import METRICS, compare_pooled
    from mmdsp.evaluation.report import markdown_table
    runs = []
    for work in (work_a, work_b):
        path = osp.join(work, 'kfold_summary.json')
        if not osp.isfile(path):
            sys.exit(f'error: {path} does not exist (run tools/kfold.py '
                     'to the end first)')
        with open(path) as f:
            runs.append(json.load(f))
    if runs[0]['split_dir'] != runs[1]['split_dir']:
        sys.exit(f'error: the runs used different folds '
                 f'({runs[0]["split_dir"]} and {runs[1]["split_dir"]})')
    pooled = []
    for run in runs:
        preds = [load_predictions(r['oof']) for r in run['folds']]
        pooled.append(dict(
            probs=np.concatenate([p['probs'] for p in preds]),
            labels=np.concatenate([p['labels'] for p in preds]),
            img_paths=sum((p['img_paths'] for p in preds), [])))
    diff = compare_pooled(*pooled)
    names = [osp.basename(osp.normpath(w)) for w in (work_a, work_b)]
    rows = []
    for m in METRICS:
        if np.isnan(runs[0]['mean'][m]):
            continue
        d = diff.get(m)
        rows.append([m] + sum(([_cell(r['mean'][m], r['std'][m]),
                                _ci(r['pooled'][m], r['pooled_low'][m],
                                    r['pooled_high'][m])] for r in runs),
                              []) +
                    [f"{d['diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
                     if d else '—'])
    minutes = [[r['minutes_train'] + r['minutes_test'] for r in run['folds']]
               for run in runs]
    rows.append(['minutes / fold'] + sum(
        ([_cell(float(np.mean(m)), float(np.std(m, ddof=1))), '—']
         for m in minutes), []) + ['—'])
    header = ['metric (%)']
    for n in names:
        header += [f'{n} mean ± std', f'{n} pooled OOF [95% CI]']
    header.append(f'{names[0]} − {names[1]} pooled, paired [95% CI]')
    print(markdown_table(header, rows))


def main(argv=None):
    args = parse_args(argv)
    if args.compare:
        compare(*args.compare)
        return
    cfg = load_config(args)
    from mmdsp.datasets.class_folders import read_classes_file
    classes = read_classes_file(osp.join(args.split_dir, 'classes.txt'))
    positive = clinical_positive(cfg, classes)
    os.makedirs(args.work_dir, exist_ok=True)
    max_epochs = cfg.train_cfg.max_epochs
    found = glob.glob(osp.join(args.split_dir, 'fold_*'))
    if len(found) != args.folds:
        # Some of more folds are not a partition: the pooled out-of-fold
        # predictions would miss images.
        sys.exit(f'error: {args.split_dir} holds {len(found)} folds, not '
                 f'{args.folds}; pass --folds {len(found)}')
    results = [run_fold(k, args, max_epochs) for k in range(args.folds)]
    summarize(args, results, positive)


if __name__ == '__main__':
    main()
