"""The recipe study of the CPU proxy: which training recipe, and does DSP win?

Usage::

    # run what is missing (resumable: one result file per finished run)
    python tools/analysis_tools/recipe_study.py run work_dirs/recipe_study \
        --models efficientnetv2-b0 --variants paper no_seg flips_only --seeds 0 1 2
    # rebuild the table from whatever results exist
    python tools/analysis_tools/recipe_study.py report work_dirs/recipe_study
    # the paper's tables 2-4 (paper recipe) beside the paper, and a figure
    python tools/analysis_tools/recipe_study.py tables \
        --results results/recipe_study --figure docs/figures/paper_tables.png
    # minutes per run of the costly rows, from their step time vs the base
    python tools/analysis_tools/recipe_study.py cost --results \
        results/recipe_study --models resnet34 vit-8l
    # keep the result files in a tracked folder instead of <out>/results
    ... run work_dirs/recipe_study --results results/recipe_study
    ... report --results results/recipe_study

Every run is EfficientNetV2-B0 or EfficientNet-DSP-B0 at 128 px, fp32, on the
leak-free split (``splits/all_leukemia``), trained with our ``tools/train.py``
and its best validation checkpoint tested with ``tools/test.py``, one run at a
time. A variant is a small function that edits the proxy config (below, the
table ``VARIANTS``); the merged config is written into the run's folder, so
each result says exactly what ran. A finished run leaves
``<results>/<model>__<variant>__seed<k>.json`` (test metrics, every test
image's prediction, best epoch, wall time; ``--results``, by default
``<out>/results``); ``run`` skips those, so a study
cut short continues where it stopped, and ``report`` prints mean +- sample
std over seeds and, against ``--baseline``, the paired difference (same
seeds, same test images) with its 95 % bootstrap interval, resampling test
images (:func:`mmdsp.evaluation.paired_bootstrap_ci`).

Data: ``$MMDSP_DATA_ROOT``, else ``../shared/data/all_leukemia/Original``.
Masks are segmented once into ``<out>/seg_cache`` (``segment_dataset.py``),
and the ``expanded`` variant's 12,314-image training set is made once into
``<out>/expanded`` (``expand_train.py``).
"""
import argparse
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS = {
    'efficientnetv2-b0': 'configs/paper_recipe/efficientnetv2-s_all.py',
    'effdsp-b0': 'configs/paper_recipe/effdsp_all.py',
    # Tables 3 and 4 (EfficientNetV2-B0 plus one brick) and table 2's
    # baselines: their configs carry the default flips-only pipelines, so
    # build_config puts the paper's recipe in (the study's ``paper`` variant
    # is then the paper's setting, as for the two models above).
    'efficientnetv2-b0+eca': 'configs/attention/efficientnetv2-s_eca_all.py',
    'efficientnetv2-b0+cbam':
    'configs/attention/efficientnetv2-s_cbam_all.py',
    'efficientnetv2-b0+sar': 'configs/ablation/sar_all.py',
    'efficientnetv2-b0+dydropblock': 'configs/ablation/dydropblock_all.py',
    'efficientnetv2-b0+pfl': 'configs/ablation/pfl_all.py',
    'efficientnetv2-b0+dyodconv': 'configs/ablation/dyodconv_all.py',
    'alexnet': 'configs/baselines/alexnet_all.py',
    'googlenet': 'configs/baselines/googlenet_all.py',
    'efficientnet-b0': 'configs/baselines/efficientnet-b0_all.py',
    'shufflenetv2': 'configs/baselines/shufflenetv2_all.py',
    'resnet34': 'configs/baselines/resnet34_all.py',
    'vit-8l': 'configs/baselines/vit_all.py',
}
# MMPretrain's AlexNet has no adaptive pooling before its classifier (its
# first linear layer expects 6 x 6 maps) and ViT-8L's position embedding is
# made for 224 px: both train at the data's native 224 px.
NATIVE_224 = ('alexnet', 'vit-8l')
EPOCHS = 12  # the proxy's budget (docs/experiments.md section 6)
IMG = 128
EXPANDED_SIZE = 12314  # paper section 4.1
TRAIN_SIZE = 2280  # splits/all_leukemia/train.txt


def _drop(cfg, step_type):
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[name]['dataset']
        ds['pipeline'] = [s for s in ds['pipeline'] if s['type'] != step_type]


def _step(cfg, step_type):
    return next(s for s in cfg.train_dataloader.dataset.pipeline
                if s['type'] == step_type)


def _epochs(cfg, epochs, temperature_epochs=None, warm=None,
            by_iter=False):
    """Schedule of ``epochs``: ``warm`` epochs of warm-up (default 3, fewer
    when short), then cosine; ``by_iter`` steps the cosine and the ODConv
    temperature every iteration instead of every epoch."""
    if warm is None:
        warm = min(3, max(epochs - 1, 1))
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler[0]['end'] = warm
    cfg.param_scheduler[1]['begin'] = warm
    cfg.param_scheduler[1]['end'] = epochs
    if by_iter:
        cfg.param_scheduler[1]['convert_to_iter_based'] = True
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'ODConvTemperatureHook':
            # The same share of training as the proxy's 10 of 12 epochs.
            hook['warmup_epochs'] = (temperature_epochs if temperature_epochs
                                     is not None else 10 * epochs / EPOCHS)
            if by_iter:
                hook['by_epoch'] = False


def paper(cfg, out):
    """The shipped recipe: segmentation, rotation (pad 0), noise."""


def no_seg(cfg, out):
    """Background removal off, in the train and test pipelines alike."""
    _drop(cfg, 'LabKMeansSegment')


def no_seg_rotate_fill(cfg, out):
    """Segmentation off; the rotation pads with a smear-like colour instead
    of black (with segmentation on, black is the removed background)."""
    no_seg(cfg, out)
    # BGR mean of the 8-pixel borders of every 4th real image (814 of the
    # 3256), as LoadImageFromFile reads them (measured: 237, 209, 204).
    _step(cfg, 'Rotate')['pad_val'] = (237, 209, 204)


def no_rotate(cfg, out):
    """No rotation, so no padded corners."""
    _drop(cfg, 'Rotate')


def no_noise(cfg, out):
    """Gaussian noise off."""
    _drop(cfg, 'RandomGaussianNoise')


def flips_only(cfg, out):
    """What MMPretrain alone would use: flips; no segmentation, rotation or
    noise."""
    for step in ('LabKMeansSegment', 'Rotate', 'RandomGaussianNoise'):
        _drop(cfg, step)


def long(cfg, out):
    """The shipped recipe for twice the iterations."""
    _epochs(cfg, 2 * EPOCHS)


def flips_only_long(cfg, out):
    """Flips only, for twice the iterations: the schedule's share of the gap
    between the shipped recipe and plain MMPretrain."""
    flips_only(cfg, out)
    _epochs(cfg, 2 * EPOCHS)


def expanded(cfg, out):
    """The paper's offline 12,314-image training set (segmentation, rotation,
    flips and noise baked in), for about the proxy's number of iterations:
    2 passes of 12,314 = 24,628 images against 12 x 2,280 = 27,360."""
    cfg.train_dataloader.dataset.data_root = osp.join(out, 'expanded')
    cfg.train_dataloader.dataset.ann_file = osp.join(out, 'expanded',
                                                     'train.txt')
    # The copies are already augmented and segmented: flips only online.
    cfg.train_dataloader.dataset.pipeline = [
        s for s in cfg.train_dataloader.dataset.pipeline
        if s['type'] in ('LoadImageFromFile', 'Resize', 'RandomFlip',
                         'PackInputs')
    ]
    # The proxy's schedule in the same shares of the iterations: warm-up 1/4
    # (3 of 12 epochs), then a cosine stepped by iteration (stepped by epoch,
    # it would hold the peak lr through the second pass and never decay),
    # and the ODConv temperature annealed by iteration too.
    _epochs(cfg, 2, warm=2 * 3 / EPOCHS, by_iter=True)


VARIANTS = {f.__name__: f for f in (paper, no_seg, no_seg_rotate_fill,
                                    no_rotate, no_noise, flips_only, long,
                                    flips_only_long, expanded)}


def data_root():
    return osp.abspath(os.environ.get(
        'MMDSP_DATA_ROOT', osp.join(ROOT, '..', 'shared', 'data',
                                    'all_leukemia', 'Original')))


def run_name(model, variant, seed):
    return f'{model}__{variant}__seed{seed}'


def build_config(model, variant, seed, out):
    """The merged config of one run (mmengine Config)."""
    from mmengine.config import Config
    import mmdsp  # noqa: F401  (mmdsp:: bases, registries)
    cfg = Config.fromfile(osp.join(ROOT, MODELS[model]))
    if cfg.model.backbone.type in ('EfficientNetV2', 'EfficientNetDSP'):
        cfg.model.backbone.arch = 'b0'
    cfg.img_size = 224 if model in NATIVE_224 else IMG
    if 'paper_recipe' not in MODELS[model]:
        cfg.train_dataloader.dataset.pipeline = cfg.paper_train_pipeline
        for name in ('val_dataloader', 'test_dataloader'):
            cfg[name].dataset.pipeline = cfg.paper_test_pipeline
    cfg.randomness = dict(seed=seed, deterministic=False)
    _epochs(cfg, EPOCHS)
    VARIANTS[variant](cfg, out)
    return cfg


def _prepare(out, variants):
    py, data = sys.executable, data_root()
    seg = osp.join(out, 'seg_cache')
    if not osp.isfile(osp.join(seg, '.done')):
        subprocess.run([py, 'tools/dataset_converters/segment_dataset.py',
                        data, seg, '--workers', '2'], cwd=ROOT, check=True)
        open(osp.join(seg, '.done'), 'w').close()
    if 'expanded' in variants and not osp.isfile(
            osp.join(out, 'expanded', 'train.txt')):
        subprocess.run([py, 'tools/dataset_converters/expand_train.py', data,
                        'splits/all_leukemia/train.txt',
                        osp.join(out, 'expanded'), '--target',
                        str(EXPANDED_SIZE), '--workers', '2'], cwd=ROOT,
                       check=True)
    return dict(os.environ, MMDSP_DATA_ROOT=data, MMDSP_SEG_CACHE=seg)


def run_one(model, variant, seed, out, env, results):
    """Train and test one run; write its result file into the folder
    ``results`` last (atomically)."""
    name = run_name(model, variant, seed)
    work = osp.join(out, 'runs', name)
    os.makedirs(work, exist_ok=True)
    cfg = build_config(model, variant, seed, out)
    cfg_path = osp.join(work, 'config.py')
    cfg.dump(cfg_path)
    py = sys.executable
    start = time.time()
    with open(osp.join(work, 'train.log'), 'w') as log:
        subprocess.run([py, 'tools/train.py', cfg_path, '--work-dir', work],
                       cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=True)
    train_s = time.time() - start
    best = max((osp.join(work, f) for f in os.listdir(work)
                if f.startswith('best_') and f.endswith('.pth')),
               key=osp.getmtime)
    preds = osp.join(work, 'test_predictions.pkl')
    with open(osp.join(work, 'test.log'), 'w') as log:
        subprocess.run([py, 'tools/test.py', cfg_path, best, '--work-dir',
                        work, '--out', preds], cwd=ROOT, env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    with open(preds, 'rb') as f:
        samples = pickle.load(f)
    from mmdsp.utils import work_dir_logs
    metrics = work_dir_logs.read_test_results(work)[-1]['metrics']
    result = dict(
        model=model, variant=variant, seed=seed, checkpoint=osp.basename(best),
        train_seconds=round(train_s, 1),
        total_seconds=round(time.time() - start, 1),
        metrics={k: v for k, v in metrics.items()
                 if not k.startswith('confusion')},
        gt=[int(s['gt_label'][0]) for s in samples],
        pred=[int(s['pred_label'][0]) for s in samples])
    path = osp.join(results, name + '.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(result, f)
    os.replace(path + '.tmp', path)
    return result


def load_results(folder):
    if not osp.isdir(folder):
        return []
    results = []
    for name in sorted(os.listdir(folder)):
        if name.endswith('.json'):
            with open(osp.join(folder, name)) as f:
                results.append(json.load(f))
    return results


def macro_f1(pred, gt, num_classes=4):
    """MMPretrain's macro F1 (%) of predicted labels: the mean of the
    per-class F1 scores (mmdsp.evaluation's one implementation)."""
    from mmdsp.evaluation.functional import precision_recall_f1
    onehot = np.eye(num_classes)[np.asarray(pred)]
    return precision_recall_f1(onehot, gt)[2]


def _mean_std(values):
    """Mean ± sample std; one run has no spread to show."""
    values = np.asarray(values, float)
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{values.mean():.2f} ± {values.std(ddof=1):.2f}'


def _accuracy(pred, gt):
    return 100 * float(np.mean(np.equal(pred, gt)))


def minutes_per_run(runs):
    """The median training minutes of result files ``runs``: a run that
    shared the cores with other work is slower, not representative."""
    return float(np.median([r['train_seconds'] for r in runs])) / 60


def _per_seed_f1(pred, gt):
    """Mean over seeds (columns) of each seed's macro F1."""
    return np.mean([macro_f1(pred[:, j], gt[:, j])
                    for j in range(pred.shape[1])])


def _paired(runs, base, fns, n_resamples):
    """The bootstrap result of ``fn(runs) - fn(base)`` for each of ``fns``,
    paired by seed and test image (None where no seed is shared)."""
    from mmdsp.evaluation import paired_bootstrap_ci
    shared = sorted(s for s in runs if s in base)
    if not shared:
        return [None] * len(fns)

    def stack(rs, key):  # test images x seeds
        return np.stack([np.asarray(rs[s][key]) for s in shared], 1)

    a = (stack(runs, 'pred'), stack(runs, 'gt'))
    b = (stack(base, 'pred'), stack(base, 'gt'))
    return [paired_bootstrap_ci(fn, a, b, n_resamples=n_resamples)
            for fn in fns]


def _ci_text(ci):
    if ci is None:
        return '-'
    return f'{ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]'


def paired_difference(runs, base, n_resamples=2000):
    """Accuracy and macro-F1 differences ``runs - base`` on the seeds both
    have, paired by seed and test image, as ``'+d [low, high] (n=k)'``
    texts with 95 % bootstrap intervals; ``('-', '-')`` when no seed is
    shared.

    Args:
        runs, base (dict): ``{seed: result}`` of two (model, variant)s.
        n_resamples (int): Bootstrap resamples. Defaults to 2000.
    """
    cis = _paired(runs, base, (_accuracy, _per_seed_f1), n_resamples)
    if cis[0] is None:
        return '-', '-'
    n = len(set(runs) & set(base))
    return tuple(f'{_ci_text(ci)} (n={n})' for ci in cis)


def report(results_dir, baseline='paper', n_resamples=2000):
    """The study's table as markdown lines, from the result files in the
    folder ``results_dir``: one row per (model, variant), then, for every
    variant both models ran, EfficientNet-DSP-B0 minus EfficientNetV2-B0."""
    results = load_results(results_dir)
    by = {}
    for r in results:
        by.setdefault((r['model'], r['variant']), {})[r['seed']] = r
    lines = [
        f'| model | variant | n | accuracy | macro F1 | Δ accuracy vs '
        f'{baseline} [95 % CI] | Δ macro F1 [95 % CI] | '
        'train min/run (median) |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for (model, variant), runs in sorted(by.items()):
        seeds = sorted(runs)
        acc = [_accuracy(runs[s]['pred'], runs[s]['gt']) for s in seeds]
        f1 = [macro_f1(runs[s]['pred'], runs[s]['gt']) for s in seeds]
        diff_acc = diff_f1 = '-'
        if variant != baseline:
            diff_acc, diff_f1 = paired_difference(
                runs, by.get((model, baseline), {}), n_resamples)
        minutes = minutes_per_run(runs.values())
        lines.append(f'| {model} | {variant} | {len(seeds)} | '
                     f'{_mean_std(acc)} | {_mean_std(f1)} | {diff_acc} | '
                     f'{diff_f1} | {minutes:.1f} |')
    dsp, v2 = 'effdsp-b0', 'efficientnetv2-b0'
    pairs = [(v, by[(dsp, v)], by[(v2, v)]) for (m, v) in sorted(by)
             if m == dsp and (v2, v) in by]
    pairs = [(v, a, b, paired_difference(a, b, n_resamples))
             for v, a, b in pairs]
    pairs = [p for p in pairs if p[3][0] != '-']
    if pairs:
        lines += ['', f'| variant | Δ accuracy {dsp} − {v2} [95 % CI] | '
                  'Δ macro F1 [95 % CI] |', '|---|---|---|']
        lines += [f'| {v} | {d[0]} | {d[1]} |' for v, _, _, d in pairs]
    total = sum(r['total_seconds'] for r in results) / 3600
    lines.append('')
    lines.append(f'{len(results)} runs, {total:.2f} h of wall-clock in all.')
    return lines


# Tables 2-4 of the paper at the proxy's scale, under the paper's recipe:
# (table, row key of paper_tables.TABLES, the study's model). Each table's
# base, against which every row's paired difference is taken, is
# EfficientNetV2-B0 (table 2's "EfficientNetV2", table 3's "+SE", table
# 4's "base").
TABLE_ROWS = {
    '2': [('resnet34', 'resnet34'), ('alexnet', 'alexnet'),
          ('googlenet', 'googlenet'), ('vit', 'vit-8l'),
          ('efficientnet', 'efficientnet-b0'),
          ('efficientnetv2', 'efficientnetv2-b0'),
          ('shufflenetv2', 'shufflenetv2'), ('dsp', 'effdsp-b0')],
    '3': [('se', 'efficientnetv2-b0'), ('eca', 'efficientnetv2-b0+eca'),
          ('cbam', 'efficientnetv2-b0+cbam'),
          ('sar', 'efficientnetv2-b0+sar')],
    '4': [('base', 'efficientnetv2-b0'),
          ('dydropblock', 'efficientnetv2-b0+dydropblock'),
          ('pfl', 'efficientnetv2-b0+pfl'),
          ('dyodconv', 'efficientnetv2-b0+dyodconv'),
          ('sar', 'efficientnetv2-b0+sar'), ('dsp', 'effdsp-b0')],
}
TABLE_BASE = 'efficientnetv2-b0'


def paper_f1_of(pred, gt, num_classes=4):
    """The paper's F1 (%): 2PR / (P + R) of the macro precision and
    recall."""
    from mmdsp.evaluation.functional import paper_f1, precision_recall_f1
    p, r, _ = precision_recall_f1(np.eye(num_classes)[np.asarray(pred)], gt)
    return paper_f1(p, r)


def _per_seed_paper_f1(pred, gt):
    return np.mean([paper_f1_of(pred[:, j], gt[:, j])
                    for j in range(pred.shape[1])])


def verdict(row):
    """One row's verdict from its paired accuracy interval against the
    base: ``'helps'`` (interval above zero), ``'hurts'`` (below zero) or
    ``'no measurable effect'``; None without a paired run."""
    ci = row.get('delta', [None])[0]
    if ci is None:
        return None
    if ci.low > 0:
        return 'helps'
    if ci.high < 0:
        return 'hurts'
    return 'no measurable effect'


def table_rows(results_dir, variant='paper', n_resamples=2000):
    """The numbers of tables 2-4: ``{table: [row dict]}``, one row per
    paper row, ours empty where no run exists yet."""
    from mmdsp.evaluation import bootstrap_ci
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from paper_tables import TABLES
    by = {}
    for r in load_results(results_dir):
        if r['variant'] == variant:
            by.setdefault(r['model'], {})[r['seed']] = r
    base = by.get(TABLE_BASE, {})
    tables = {}
    for tid, rows in TABLE_ROWS.items():
        paper = {key: (name, nums) for key, name, nums, _ in
                 TABLES[tid]['rows']}
        out = []
        for key, model in rows:
            name, nums = paper[key]
            runs = by.get(model, {})
            row = dict(table=tid, key=key, method=name, model=model,
                       paper_acc=nums[0], paper_f1=nums[3], n=len(runs))
            if runs:
                seeds = sorted(runs)
                preds = [np.asarray(runs[s]['pred']) for s in seeds]
                gts = [np.asarray(runs[s]['gt']) for s in seeds]
                row['acc'] = [_accuracy(p, g) for p, g in zip(preds, gts)]
                row['f1'] = [macro_f1(p, g) for p, g in zip(preds, gts)]
                row['paper_f1_ours'] = [paper_f1_of(p, g)
                                        for p, g in zip(preds, gts)]
                row['minutes'] = minutes_per_run(runs.values())
                row['seconds'] = {s: runs[s]['total_seconds'] for s in seeds}
                row['base_seeds'] = sorted(s for s in seeds if s in base)
                # The row's accuracy interval: test images resampled, the
                # seeds' predictions pooled.
                ci = bootstrap_ci(_accuracy, np.concatenate(preds),
                                  np.concatenate(gts),
                                  n_resamples=n_resamples)
                row['acc_ci'] = (ci.low, ci.high)
                if model != TABLE_BASE:
                    row['delta'] = _paired(
                        runs, base, (_accuracy, _per_seed_f1,
                                     _per_seed_paper_f1), n_resamples)
            out.append(row)
        tables[tid] = out
    return tables


def tables_markdown(tables):
    """Tables 2-4 beside the paper, as markdown lines."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from paper_tables import TABLES
    lines = []
    for tid, rows in tables.items():
        lines += [f'### {TABLES[tid]["title"]}', '',
                  '| method | paper acc | paper F1 | n | accuracy | F1 '
                  '(MMPretrain) | F1 (paper) | Δ acc vs EfficientNetV2-B0 '
                  '[95 % CI] | Δ F1 (MMPretrain) | Δ F1 (paper) | '
                  'train min/run (median) |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for r in rows:
            if not r['n']:
                lines.append(f'| {r["method"]} | {r["paper_acc"]:.2f} | '
                             f'{r["paper_f1"]:.2f} | 0 | not run yet | | | '
                             '| | | |')
                continue
            delta = ([_ci_text(ci) for ci in r['delta']] if 'delta' in r
                     else ['(base)'] * 3)
            lines.append(
                f'| {r["method"]} | {r["paper_acc"]:.2f} | '
                f'{r["paper_f1"]:.2f} | {r["n"]} | {_mean_std(r["acc"])} | '
                f'{_mean_std(r["f1"])} | {_mean_std(r["paper_f1_ours"])} | '
                f'{delta[0]} | {delta[1]} | {delta[2]} | '
                f'{r["minutes"]:.1f} |')
        lines.append('')
    lines += ['### Verdicts (paired accuracy interval against '
              'EfficientNetV2-B0)', '']
    seen = set()
    # The bricks first; table 2's baselines are no brick of the base.
    for tid in sorted(tables, reverse=True):
        base = next(r for r in tables[tid] if r['model'] == TABLE_BASE)
        for r in tables[tid]:
            v = verdict(r)
            if v is None or r['model'] in seen:
                continue
            seen.add(r['model'])
            ci = r['delta'][0]
            claim = r['paper_acc'] - base['paper_acc']
            inside = 'inside' if ci.low <= claim <= ci.high else 'outside'
            if tid == '2' and r['model'] != 'effdsp-b0':
                v = {'helps': 'above the base', 'hurts': 'below the base'
                     }.get(v, 'no measurable difference')
            lines.append(
                f'- {r["method"]} (`{r["model"]}`, n={len(r["base_seeds"])}'
                f'): {v}, {_ci_text(ci)} points; the paper\'s '
                f'{claim:+.2f} is {inside} the interval.')
    runs = {(r['model'], s): sec for rows in tables.values() for r in rows
            for s, sec in r.get('seconds', {}).items()}
    lines += ['', f'Cost: {len(runs)} runs, '
              f'{sum(runs.values()) / 3600:.1f} h of wall time (train and '
              'test, the sum of the result files\' `total_seconds`).', '']
    return lines


def plot_tables(tables, path):
    """One figure, a panel per table: each row's test accuracy (mean over
    seeds, 95 % bootstrap interval over the pooled test images) beside the
    paper's value."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2),
                             gridspec_kw=dict(width_ratios=[8, 4, 6]))
    for ax, (tid, rows) in zip(axes, tables.items()):
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows):
            ax.plot(r['paper_acc'], yi + 0.15, 'x', color='tab:gray')
            if r['n']:
                mean = np.mean(r['acc'])
                low, high = r['acc_ci']
                ax.errorbar(mean, yi - 0.15, xerr=[[mean - low],
                                                   [high - mean]],
                            fmt='o', color='tab:blue', capsize=3)
                ax.text(high + 0.3, yi - 0.15, f'n={r["n"]}', va='center',
                        fontsize=7)
        ax.set_yticks(y, [r['method'] for r in rows], fontsize=8)
        ax.set_title(f'Table {tid}', fontsize=10)
        ax.set_xlabel('test accuracy (%)')
        ax.grid(axis='x', alpha=0.3)
    axes[0].plot([], [], 'x', color='tab:gray', label='paper')
    axes[0].errorbar([], [], xerr=[], fmt='o', color='tab:blue',
                     label='ours: mean and 95 % bootstrap interval '
                     '(CPU proxy, paper recipe)')
    # Below the panels: inside one it would cover a row.
    fig.legend(*axes[0].get_legend_handles_labels(), loc='lower center',
               ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def step_seconds(models, out, repeats=3, batch=None):
    """Median seconds of one training step (forward, loss, backward, SGD
    step) of each model as its ``paper`` run builds it, on random images of
    the run's size, the models interleaved repeat by repeat."""
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS as REGISTRY
    from mmpretrain.structures import DataSample
    init_default_scope('mmpretrain')
    setups = []
    for name in models:
        cfg = build_config(name, 'paper', 0, out)
        model = REGISTRY.build(cfg.model).train()
        loss = getattr(model.head, 'loss_module', None)
        if hasattr(loss, 'set_omega'):  # PolyFocal: the hook's job in a run
            loss.set_omega([1.] * 4)
        n = batch or cfg.train_dataloader.batch_size
        x = torch.randn(n, 3, cfg.img_size, cfg.img_size)
        samples = [DataSample().set_gt_label(i % 4) for i in range(n)]
        setups.append((model, torch.optim.SGD(model.parameters(), lr=1e-3),
                       x, samples))

    def step(model, optim, x, samples):
        start = time.perf_counter()
        losses = model(x, samples, mode='loss')
        optim.zero_grad()
        model.parse_losses(losses)[0].backward()
        optim.step()
        return time.perf_counter() - start

    for setup in setups:  # warm-up
        step(*setup)
    times = [[step(*setup) for setup in setups] for _ in range(repeats)]
    return dict(zip(models, np.median(times, 0).tolist()))


def cost(models, results, out, repeats=3, batch=None):
    """Markdown lines: each model's training-step time against the base's,
    and its minutes per run estimated as the base's measured minutes per
    run (:func:`minutes_per_run` of its result files) times that ratio."""
    times = step_seconds([TABLE_BASE] + list(models), out, repeats, batch)
    base = [r for r in load_results(results)
            if r['model'] == TABLE_BASE and r['variant'] == 'paper']
    base_min = minutes_per_run(base) if base else float('nan')
    lines = ['| model | step (s) | × base | est. min/run |',
             '|---|---|---|---|']
    for name, sec in times.items():
        ratio = sec / times[TABLE_BASE]
        lines.append(f'| {name} | {sec:.2f} | {ratio:.2f} | '
                     f'{base_min * ratio:.0f} |')
    lines.append(f'\nbase: {len(base)} measured runs, median {base_min:.1f} '
                 'min; a run also loads, validates and tests, which the '
                 'step time leaves out.')
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    run_p = sub.add_parser('run', help='run the missing runs')
    run_p.add_argument('out', help='work folder: runs, masks, expanded set')
    run_p.add_argument('--models', nargs='+', default=list(MODELS),
                       choices=list(MODELS))
    run_p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                       choices=list(VARIANTS))
    run_p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    rep_p = sub.add_parser('report', help='print the table')
    rep_p.add_argument('out', nargs='?', help='the work folder of `run`')
    rep_p.add_argument('--baseline', default='paper', choices=list(VARIANTS))
    tab_p = sub.add_parser('tables', help="print the paper's tables 2-4 "
                           'from the paper-recipe runs')
    tab_p.add_argument('out', nargs='?', help='the work folder of `run`')
    tab_p.add_argument('--figure', help='also write the figure (PNG) here')
    cost_p = sub.add_parser('cost', help='estimate minutes per run from '
                            'the training-step time against the base')
    cost_p.add_argument('out', nargs='?', help='the work folder of `run`')
    cost_p.add_argument('--models', nargs='+', required=True,
                        choices=list(MODELS))
    cost_p.add_argument('--repeats', type=int, default=3)
    for p in (run_p, rep_p, tab_p, cost_p):
        p.add_argument('--results', help='folder of the result files '
                       '(default: <out>/results)')
    args = parser.parse_args(argv)
    if args.out is None and args.results is None:
        parser.error('report needs the work folder or --results')
    out = osp.abspath(args.out) if args.out else None
    results = osp.abspath(args.results or osp.join(out, 'results'))
    if args.cmd == 'report':
        print('\n'.join(report(results, args.baseline)))
        return
    if args.cmd == 'cost':
        print('\n'.join(cost(args.models, results, out or results,
                              args.repeats)))
        return
    if args.cmd == 'tables':
        tables = table_rows(results)
        print('\n'.join(tables_markdown(tables)))
        if args.figure:
            plot_tables(tables, args.figure)
        return
    env = _prepare(out, args.variants)
    # Seeds outermost: every variant gets its first seed before any third.
    for seed in args.seeds:
        for variant in args.variants:
            for model in args.models:
                name = run_name(model, variant, seed)
                if osp.isfile(osp.join(results, name + '.json')):
                    continue
                print(f'[{time.strftime("%H:%M:%S")}] {name}', flush=True)
                r = run_one(model, variant, seed, out, env, results)
                print(f'  test accuracy {r["metrics"]["accuracy/top1"]:.2f} '
                      f'({r["train_seconds"] / 60:.1f} min)', flush=True)


if __name__ == '__main__':
    main()
