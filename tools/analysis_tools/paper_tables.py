"""Tables 2, 3 and 4 of the paper from our runs' work_dirs.

Usage::

    python tools/analysis_tools/paper_tables.py work_dirs/* --out-dir results

Each WORK_DIR is one run, as written by ``tools/train.py`` and
``tools/test.py`` (mmengine 0.10.7), or a folder of such runs:

* ``<work_dir>/<config name>.py``: the config, dumped by every run;
* ``<work_dir>/<timestamp>/vis_data/<timestamp>.json`` (and
  ``scalars.json``): a training run's log, one JSON object a line; lines with
  ``loss`` are training iterations, the others validation epochs;
* ``<work_dir>/<timestamp>/<timestamp>.json``: a test run's metrics (one
  line), next to ``<timestamp>.log`` which names the checkpoint.

A run belongs to a table row by its config name (see ``TABLES`` for the
default patterns; ``--assign NAME=ROW`` overrides them). Runs of the same
config (e.g. ``work_dirs/effdsp_all_seed0``, ``..._seed1``) are averaged:
mean +- sample standard deviation. Params and FLOPs are measured at
``--img-size`` with :func:`mmengine.analysis.get_model_complexity_info`
(FLOPs count one multiply-add as one operation, the convention that
reproduces the paper's FLOPs column) twice: with a 1000-class head, the
paper's convention, and as configured (4 classes).

The paper's published numbers are hard-coded in ``TABLES`` as reference
data and shown in the ``paper`` columns next to ours; every number of ours
comes from the logs and configs. Writes ``table{2,3,4}.{md,csv}``,
``tables.md`` (all three) and ``runs.csv`` (one line per run) to --out-dir.

F1 is shown twice, labelled: MMPretrain's (mean of the per-class F1) and
the paper's convention, 2PR/(P+R) of the macro precision and recall. With
``BootstrapCI`` in a run's test_evaluator, ``intervals.csv`` and a section of
``tables.md`` give each run's 95 % bootstrap intervals; with prediction dumps
(``tools/test.py ... --out WORK_DIR/preds.pkl``) ``paired.csv`` and another
section give EfficientNet-DSP minus each other table 2 model on the same
test images, with paired bootstrap intervals (:mod:`mmdsp.evaluation`).
"""
import argparse
import copy
import csv
import fnmatch
import math
import os
import os.path as osp
import statistics
import warnings
from collections import OrderedDict

from mmdsp.evaluation.functional import paper_f1
from mmdsp.utils.work_dir_logs import (METRICS, find_run_dirs, load_run,
                                      read_test_results)

# The paper's F1 is 2PR / (P + R) of its macro precision and recall (it
# reproduces every F1 of tables 2-4); MMPretrain's SingleLabelMetric reports
# the mean of the per-class F1 values. Both are shown, labelled.
F1_LABELS = ('F1 (%), mean of per-class F1 (MMPretrain)',
             'F1 (%), 2PR/(P+R) of macro P, R (paper)')
# BootstrapCI items (bootstrap/<item>_low, _high) and their point estimate.
CI_ITEMS = (('accuracy', 'accuracy/top1'), ('precision', '/precision'),
            ('recall', '/recall'), ('f1-score', '/f1-score'),
            ('auroc', 'auroc/macro'))


# Reference data: the paper's published numbers (accuracy, precision,
# recall, F1 in %, Params in 1e6, FLOPs in 1e9), tables 2-4. Each row:
# (key, method as printed, paper numbers, config-name patterns tried in
# order; fnmatch, case-insensitive).
_EFF = ('eff*', )


def _tagged(*tags):
    # configs/ablation/<tag>_all.py, configs/attention/<model>_<tag>_all.py
    pats = []
    for tag in tags:
        pats.append(f'{tag}_all')
        for prefix in _EFF:
            pats += [f'{prefix}[-_]{tag}', f'{prefix}[-_]{tag}[-_]*']
    return pats


TABLES = OrderedDict([
    ('2', dict(
        title='Table 2: comparison with other networks (test set)',
        rows=[
            ('resnet34', 'ResNet34',
             (94.10, 94.46, 94.00, 94.22, 21.79, 3.67), ['resnet34_all']),
            ('alexnet', 'AlexNet',
             (86.34, 86.19, 86.35, 86.26, 61.10, 0.71), ['alexnet_all']),
            ('googlenet', 'GoogleNet',
             (90.37, 89.34, 89.81, 89.57, 6.62, 1.51), ['googlenet_all']),
            ('vit', 'Vision Transformer',
             (93.50, 93.11, 92.24, 92.67, 57.30, 11.28),
             ['vit_all', 'vit[-_]*_all']),
            ('efficientnet', 'EfficientNet',
             (93.48, 94.40, 93.48, 93.93, 5.28, 0.41),
             ['efficientnet-b0_all', 'efficientnet_b0_all']),
            ('efficientnetv2', 'EfficientNetV2',
             (96.02, 96.09, 95.43, 95.75, 21.45, 2.90),
             ['efficientnetv2-s_all', 'efficientnetv2_s_all']),
            ('shufflenetv2', 'ShuffleNetV2',
             (95.03, 95.71, 95.40, 95.55, 1.37, 0.04),
             ['shufflenetv2_all', 'shufflenet[-_]v2*_all']),
            ('dsp', 'EfficientNet-DSP (ours)',
             (98.46, 98.52, 98.50, 98.51, 17.63, 1.96),
             ['effdsp_all', 'efficientnet[-_]dsp_all']),
        ])),
    ('3', dict(
        title='Table 3: attention mechanisms in EfficientNetV2 (test set)',
        rows=[
            # EfficientNetV2's MBConv already has SE: the paper's SE row
            # repeats its EfficientNetV2 numbers.
            ('se', 'EfficientNetV2+SE', (96.02, 96.09, 95.43, 95.75),
             _tagged('se') + ['efficientnetv2-s_all']),
            ('eca', 'EfficientNetV2+ECA', (96.94, 97.14, 96.43, 96.78),
             _tagged('eca')),
            ('cbam', 'EfficientNetV2+CBAM', (97.55, 97.44, 97.45, 97.44),
             _tagged('cbam')),
            ('sar', 'EfficientNetV2+SAR', (97.84, 98.00, 97.85, 97.92),
             _tagged('sar')),
        ])),
    ('4', dict(
        title='Table 4: ablation on EfficientNetV2 (test set)',
        rows=[
            ('base', 'base', (96.02, 96.09, 95.43, 95.75),
             _tagged('base') + ['efficientnetv2-s_all']),
            ('dydropblock', '+DyDropBlock', (97.82, 97.59, 97.78, 97.68),
             _tagged('dydropblock', 'dropblock')),
            ('pfl', '+PFL', (97.53, 97.66, 96.72, 97.18),
             _tagged('pfl', 'polyfocal', 'poly[-_]focal')),
            ('dyodconv', '+Dy-ODConv', (97.55, 96.62, 97.70, 97.15),
             _tagged('dyodconv', 'dy-odconv', 'odconv')),
            ('sar', '+SAR', (97.84, 98.00, 97.85, 97.92), _tagged('sar')),
            ('dsp', 'EfficientNet-DSP (ours)', (98.46, 98.52, 98.50, 98.51),
             ['effdsp_all', 'efficientnet[-_]dsp_all']),
        ])),
])

# ------------------------------------------------------------ complexity


def _set_num_classes(model_cfg, num_classes):
    """Set the class count of a classifier config; False if none found."""
    found = False
    head = model_cfg.get('head')
    if isinstance(head, dict) and 'num_classes' in head:
        head['num_classes'] = num_classes
        found = True
    backbone = model_cfg.get('backbone')
    # Backbones that hold their own classifier (MMPretrain's AlexNet).
    if isinstance(backbone, dict) and backbone.get('num_classes', -1) > 0:
        backbone['num_classes'] = num_classes
        found = True
    return found


def model_complexity(cfg_path, img_size=224, num_classes=None):
    """Params (M) and FLOPs (G) of a config's model at ``img_size``.

    Args:
        cfg_path (str): A config file (e.g. the copy in a work_dir).
        img_size (int): Input side. Defaults to 224, the paper's.
        num_classes (int, optional): Replace the head's class count (the
            paper counts 1000-class ImageNet heads). Defaults to None.

    Returns:
        tuple[float, float]: Params in millions and FLOPs in billions;
        FLOPs is NaN when the model cannot be traced, and both are NaN when
        the config has no head whose class count can be set.
    """
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(cfg_path)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    if num_classes is not None and not _set_num_classes(
            model_cfg, num_classes):
        warnings.warn(f'{cfg_path}: no head.num_classes to set to '
                      f'{num_classes}; complexity not measured')
        return math.nan, math.nan
    model = MODELS.build(model_cfg)
    model.eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    try:
        with torch.no_grad():
            info = get_model_complexity_info(
                model,
                inputs=(torch.zeros(1, 3, img_size, img_size), ),
                show_table=False,
                show_arch=False)
        flops = info['flops'] / 1e9
    except Exception as e:  # tracing failures depend on the model
        warnings.warn(f'{cfg_path}: FLOPs not measured ({e!r})')
        flops = math.nan
    return params, flops


# ---------------------------------------------------------------- tables


def _match_rows(names, assign):
    """``{(table, row key): config name}`` for the names present."""
    chosen = {}
    for tid, table in TABLES.items():
        for key, _, _, patterns in table['rows']:
            row_id = f't{tid}:{key}'
            forced = [n for n, r in assign.items() if r == row_id]
            if forced:
                chosen[(tid, key)] = forced[0]
                continue
            for pat in patterns:
                hits = sorted(
                    n for n in names if n not in assign
                    and fnmatch.fnmatchcase(n.lower(), pat.lower()))
                if hits:
                    if len(hits) > 1:
                        warnings.warn(
                            f'table {tid} row {key!r}: configs {hits} all '
                            f'match {pat!r}; using {hits[0]!r} (choose with '
                            f'--assign NAME={row_id})')
                    chosen[(tid, key)] = hits[0]
                    break
    return chosen


def _stats(values):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), std


def build_tables(runs, complexity=None, assign=None):
    """Rows of tables 2-4 from loaded runs.

    Args:
        runs (list[dict]): Results of :func:`load_run`.
        complexity (dict, optional): ``{config name: dict(params, flops,
            params_1000, flops_1000)}``. Defaults to None (columns empty).
        assign (dict, optional): ``{config name: 't<table>:<row>'}``,
            overriding the name patterns of ``TABLES``. Defaults to None.

    Returns:
        OrderedDict: ``{table id: list of row dicts}``.
    """
    complexity = complexity or {}
    groups = OrderedDict()
    for run in runs:
        groups.setdefault(run['config'], []).append(run)
    for name, group in groups.items():
        seeds = [r['seed'] for r in group]
        if len(set(map(str, seeds))) < len(seeds):
            # Same seed twice is a repeat, not an independent sample.
            warnings.warn(f'config {name!r}: runs share seeds {seeds} '
                          f'({[r["work_dir"] for r in group]})')
    chosen = _match_rows(list(groups), assign or {})
    tables = OrderedDict()
    for tid, table in TABLES.items():
        rows = []
        for key, method, paper, _ in table['rows']:
            name = chosen.get((tid, key))
            group = groups.get(name, [])
            row = OrderedDict(table=tid, row=key, method=method,
                              config=name or '', n_runs=len(group))
            for i, (col, _, _) in enumerate(METRICS):
                row[f'{col}_mean'], row[f'{col}_std'] = _stats(
                    [r[col] for r in group])
                row[f'paper_{col}'] = paper[i]
            row['f1_paper_conv_mean'], row['f1_paper_conv_std'] = _stats(
                [paper_f1(r['precision'], r['recall']) for r in group])
            cx = complexity.get(name, {})
            row['params_1000_m'] = cx.get('params_1000', math.nan)
            row['paper_params_m'] = paper[4] if len(paper) > 4 else math.nan
            row['flops_1000_g'] = cx.get('flops_1000', math.nan)
            row['paper_flops_g'] = paper[5] if len(paper) > 5 else math.nan
            row['params_m'] = cx.get('params', math.nan)
            row['flops_g'] = cx.get('flops', math.nan)
            row['seeds'] = ' '.join(str(r['seed']) for r in group)
            row['source'] = '; '.join(sorted({r['source'] for r in group}))
            row['work_dirs'] = ' '.join(r['work_dir'] for r in group)
            rows.append(row)
        tables[tid] = rows
    return tables


def _fmt(value, digits=2):
    return '—' if value is None or (isinstance(value, float)
                                    and math.isnan(value)) \
        else f'{value:.{digits}f}'


def _fmt_stat(mean, std):
    if math.isnan(mean):
        return '—'
    return _fmt(mean) if math.isnan(std) else f'{mean:.2f} ± {std:.2f}'


def table_markdown(tid, rows):
    """One table as markdown: ours next to the paper's, per metric."""
    head = ['Method', 'Config', 'n']
    for col, label, _ in METRICS:
        head += [F1_LABELS[0], F1_LABELS[1], 'paper'] if col == 'f1' \
            else [label, 'paper']
    head += [
        'Params (M), 1000 cls', 'paper', 'FLOPs (G), 1000 cls', 'paper',
        'Params (M), 4 cls', 'FLOPs (G), 4 cls'
    ]
    lines = [f'### {TABLES[tid]["title"]}', '',
             '| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['method'], f'`{r["config"]}`' if r['config'] else '—',
                 str(r['n_runs'])]
        for col, _, _ in METRICS:
            cells.append(_fmt_stat(r[f'{col}_mean'], r[f'{col}_std']))
            if col == 'f1':
                cells.append(_fmt_stat(r['f1_paper_conv_mean'],
                                       r['f1_paper_conv_std']))
            cells.append(_fmt(r[f'paper_{col}']))
        cells += [_fmt(r['params_1000_m']), _fmt(r['paper_params_m']),
                  _fmt(r['flops_1000_g']), _fmt(r['paper_flops_g']),
                  _fmt(r['params_m']), _fmt(r['flops_g'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Ours: mean ± sample std over n runs (seeds); "paper": '
              'published numbers of the paper, for reference. Metrics are '
              'macro averages over the 4 classes. The paper\'s F1 is '
              '2PR/(P+R) of its macro precision and recall; MMPretrain\'s '
              'is the mean of the per-class F1 values.', '']
    return '\n'.join(lines)


# ------------------------------------------------- intervals, differences


def _record_value(record, suffix):
    keys = [k for k in record if k == suffix or k.endswith(suffix)]
    return float(record[keys[0]]) if keys else math.nan


def run_intervals(run):
    """95 % bootstrap intervals a run's newest test json holds.

    They come from the ``BootstrapCI`` metric of the test_evaluator
    (``bootstrap/<item>_low``, ``_high``). Returns None for a run without
    them.
    """
    results = read_test_results(run['work_dir'])
    if not results:
        return None
    record = results[-1]['metrics']
    if not any(k.startswith('bootstrap/') for k in record):
        return None
    out = OrderedDict(work_dir=run['work_dir'], config=run['config'],
                      seed=run['seed'])
    for item, suffix in CI_ITEMS:
        out[item] = _record_value(record, suffix)
        out[f'{item}_low'] = float(record.get(f'bootstrap/{item}_low',
                                              math.nan))
        out[f'{item}_high'] = float(record.get(f'bootstrap/{item}_high',
                                               math.nan))
    return out


def _ci_cell(value, low, high):
    if math.isnan(value):
        return '—'
    if math.isnan(low):
        return _fmt(value)
    return f'{value:.2f} [{low:.2f}, {high:.2f}]'


def intervals_markdown(rows):
    head = ['Config', 'seed', 'Accuracy (%)', 'Precision (%)', 'Recall (%)',
            F1_LABELS[0], 'AUROC (%), macro one-vs-rest']
    lines = ['### 95 % bootstrap intervals over the test images', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [f'`{r["config"]}`', str(r['seed'])]
        cells += [_ci_cell(r[i], r[f'{i}_low'], r[f'{i}_high'])
                  for i, _ in CI_ITEMS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Value [2.5 %, 97.5 %] percentiles of 1000 seeded '
              'resamples of the test images (BootstrapCI in the '
              'test_evaluator).', '']
    return '\n'.join(lines)


def paired_differences(pairs, preds_name, n_resamples=1000, seed=0):
    """Paired bootstrap of model A minus model B on the same test images.

    Args:
        pairs (list[tuple[str, dict, dict]]): ``(label, run_a, run_b)``.
        preds_name (str): The prediction dump in each work_dir
            (``tools/test.py ... --out <work_dir>/<preds_name>``).

    Returns:
        list[OrderedDict]: One row per pair with a dump on both sides.
    """
    import numpy as np

    from mmdsp.evaluation import paired_bootstrap_ci
    from mmdsp.evaluation.dumps import align_predictions, load_predictions
    from mmdsp.evaluation.functional import (accuracy, one_vs_rest_auroc,
                                             precision_recall_f1)

    def stats(probs, labels):
        p, r, f = precision_recall_f1(probs, labels)
        auc = one_vs_rest_auroc(probs, labels)
        auc = np.nanmean(auc) * 100 if np.isfinite(auc).any() else np.nan
        return np.array([accuracy(probs, labels), p, r, f, auc])

    rows = []
    for label, run_a, run_b in pairs:
        files = [osp.join(r['work_dir'], preds_name) for r in (run_a, run_b)]
        if not all(osp.isfile(f) for f in files):
            continue
        a, b = align_predictions(*map(load_predictions, files),
                                 names=(run_a['work_dir'],
                                        run_b['work_dir']))
        ci = paired_bootstrap_ci(stats, (a['probs'], a['labels']),
                                 (b['probs'], b['labels']),
                                 n_resamples=n_resamples, seed=seed)
        row = OrderedDict(comparison=label, a=run_a['work_dir'],
                          b=run_b['work_dir'], images=len(a['labels']))
        for i, (item, _) in enumerate(CI_ITEMS):
            row[f'{item}_diff'] = float(ci.estimate[i])
            row[f'{item}_low'] = float(ci.low[i])
            row[f'{item}_high'] = float(ci.high[i])
        row['share_a_not_better_accuracy'] = float(
            np.mean(ci.samples[:, 0] <= 0))
        rows.append(row)
    return rows


def paired_markdown(rows):
    head = ['A − B', 'images', 'Accuracy', 'Precision', 'Recall',
            F1_LABELS[0].replace(' (%)', ''), 'AUROC',
            'resamples with A not better (accuracy)']
    lines = ['### Paired differences on the same test images '
             '(percentage points, 95 % paired bootstrap)', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['comparison'], str(r['images'])]
        cells += [_ci_cell(r[f'{i}_diff'], r[f'{i}_low'], r[f'{i}_high'])
                  for i, _ in CI_ITEMS]
        cells.append(f'{r["share_a_not_better_accuracy"] * 100:.1f} %')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'An interval that excludes 0 means the difference is '
              'larger than the resampling noise of this test set.', '']
    return '\n'.join(lines)


def default_pairs(runs, tables):
    """EfficientNet-DSP against every other row of table 2 (first run of
    each config)."""
    first = {}
    for run in runs:
        first.setdefault(run['config'], run)
    rows = {r['row']: r for r in tables.get('2', [])}
    dsp = rows.get('dsp')
    if not dsp or dsp['config'] not in first:
        return []
    pairs = []
    for key, row in rows.items():
        if key != 'dsp' and row['config'] in first:
            pairs.append((f'{dsp["method"]} − {row["method"]}',
                          first[dsp['config']], first[row['config']]))
    return pairs


def write_csv(path, rows):
    if not rows:
        return
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({
                k: ('' if isinstance(v, float) and math.isnan(v) else v)
                for k, v in row.items()
            })


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the paper\'s tables 2-4 from work_dirs')
    parser.add_argument(
        'work_dirs', nargs='+',
        help='run work_dirs, or folders holding them (e.g. work_dirs)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument(
        '--split', choices=['test', 'val'], default='test',
        help='test: newest tools/test.py result of each run (default); '
        'val: its best validation epoch')
    parser.add_argument(
        '--assign', nargs='*', default=[], metavar='NAME=ROW',
        help='put config NAME in a row, e.g. my_sar_cfg=t3:sar; rows: ' +
        ', '.join(f't{t}:{r[0]}' for t, tb in TABLES.items()
                  for r in tb['rows']))
    parser.add_argument(
        '--img-size', type=int, default=224,
        help='input side for Params/FLOPs (default 224, the paper\'s)')
    parser.add_argument(
        '--no-complexity', action='store_true',
        help='skip building the models for Params/FLOPs')
    parser.add_argument(
        '--preds-name', default='preds.pkl',
        help='prediction dump in each work_dir for the paired differences '
        '(tools/test.py ... --out WORK_DIR/preds.pkl; default preds.pkl)')
    parser.add_argument('--n-resamples', type=int, default=1000,
                        help='paired bootstrap resamples (default 1000)')
    return parser.parse_args(argv)


def parse_assign(items):
    rows = {f't{t}:{r[0]}' for t, tb in TABLES.items() for r in tb['rows']}
    assign = {}
    for item in items:
        name, sep, row = item.partition('=')
        if not sep or row not in rows:
            raise ValueError(f'--assign {item!r}: expected NAME=ROW with ROW '
                             f'one of {sorted(rows)}')
        assign[name] = row
    return assign


def main(argv=None):
    args = parse_args(argv)
    assign = parse_assign(args.assign)
    import mmdsp  # noqa: F401  (registers the models of saved configs)

    runs, skipped = [], []
    for work_dir in find_run_dirs(args.work_dirs):
        run = load_run(work_dir, args.split)
        if run is None:
            skipped.append(work_dir)
            hint = ('run tools/test.py CONFIG CHECKPOINT --work-dir '
                    f'{work_dir}') if args.split == 'test' else \
                'it has no validation epoch'
            print(f'skipped {work_dir}: no {args.split} result ({hint})')
        else:
            runs.append(run)
    if not runs:
        raise SystemExit(f'no {args.split} results in {args.work_dirs}')

    complexity = {}
    if not args.no_complexity:
        for run in runs:
            name = run['config']
            if name in complexity:
                continue
            params, flops = model_complexity(run['config_path'],
                                             args.img_size)
            params_1000, flops_1000 = model_complexity(
                run['config_path'], args.img_size, num_classes=1000)
            complexity[name] = dict(params=params, flops=flops,
                                    params_1000=params_1000,
                                    flops_1000=flops_1000)
            print(f'{name}: {params:.2f} M / {flops:.2f} G as configured, '
                  f'{params_1000:.2f} M / {flops_1000:.2f} G with 1000 '
                  f'classes at {args.img_size} px')

    tables = build_tables(runs, complexity, assign)
    os.makedirs(args.out_dir, exist_ok=True)
    parts = ['# Paper tables 2-4, reproduced', '',
             f'Split: {args.split}. Params/FLOPs at {args.img_size} px.', '']
    for tid, rows in tables.items():
        md = table_markdown(tid, rows)
        parts.append(md)
        with open(osp.join(args.out_dir, f'table{tid}.md'), 'w') as f:
            f.write(md)
        write_csv(osp.join(args.out_dir, f'table{tid}.csv'), rows)
    if args.split == 'test':
        intervals = [c for c in map(run_intervals, runs) if c]
        if intervals:
            parts.append(intervals_markdown(intervals))
            write_csv(osp.join(args.out_dir, 'intervals.csv'), intervals)
        paired = paired_differences(default_pairs(runs, tables),
                                    args.preds_name, args.n_resamples)
        if paired:
            parts.append(paired_markdown(paired))
            write_csv(osp.join(args.out_dir, 'paired.csv'), paired)
            print(paired_markdown(paired))
    with open(osp.join(args.out_dir, 'tables.md'), 'w') as f:
        f.write('\n'.join(parts))
    write_csv(
        osp.join(args.out_dir, 'runs.csv'),
        [{k: v for k, v in r.items() if k != 'config_path'} for r in runs])
    used = {r['config'] for rows in tables.values() for r in rows}
    for name in sorted({r['config'] for r in runs} - used):
        print(f'config {name!r} is in no table row (see --assign)')
    print(f'wrote tables 2-4 of {len(runs)} runs to {args.out_dir}')
    return tables


if __name__ == '__main__':
    main()
