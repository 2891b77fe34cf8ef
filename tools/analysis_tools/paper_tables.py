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

from mmdsp.utils.work_dir_logs import METRICS, find_run_dirs, load_run


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
    for _, label, _ in METRICS:
        head += [label, 'paper']
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
            cells += [_fmt_stat(r[f'{col}_mean'], r[f'{col}_std']),
                      _fmt(r[f'paper_{col}'])]
        cells += [_fmt(r['params_1000_m']), _fmt(r['paper_params_m']),
                  _fmt(r['flops_1000_g']), _fmt(r['paper_flops_g']),
                  _fmt(r['params_m']), _fmt(r['flops_g'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Ours: mean ± sample std over n runs (seeds); "paper": '
              'published numbers of the paper, for reference. Metrics are '
              'macro averages over the 4 classes.', '']
    return '\n'.join(lines)


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
