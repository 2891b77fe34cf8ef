"""Reading mmengine 0.10.7 work_dirs: configs, training logs, test results.

Shared by ``tools/analysis_tools/paper_tables.py`` and the figure tools in
``tools/visualization/``. A work_dir, as ``tools/train.py`` and
``tools/test.py`` write it, holds:

* ``<work_dir>/<config name>.py``: the config, dumped by every run;
* ``<work_dir>/<timestamp>/vis_data/<timestamp>.json`` (and
  ``scalars.json``): a training run's log, one JSON object a line; lines with
  ``loss`` are training iterations, the others validation epochs;
* ``<work_dir>/<timestamp>/<timestamp>.json``: a test run's metrics (one
  line), next to ``<timestamp>.log`` which names the checkpoint.
"""
import glob
import json
import math
import os
import os.path as osp
import re

METRICS = (
    # column, label, suffix of the mmpretrain metric key
    ('accuracy', 'Accuracy (%)', 'accuracy/top1'),
    ('precision', 'Precision (%)', '/precision'),
    ('recall', 'Recall (%)', '/recall'),
    ('f1', 'F1 (%)', '/f1-score'),
)

_TS = re.compile(r'^\d{8}_\d{6}$')
_CKPT = re.compile(r'Load checkpoint from (\S+)')


def read_json_lines(path):
    """The records of an mmengine json log (one JSON object a line).

    Args:
        path (str): A ``vis_data/*.json`` or test ``<timestamp>.json`` file.

    Returns:
        list[dict]: The records in file order.
    """
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{lineno}: not an mmengine json log '
                                 f'line ({e})') from e
    return records


def _timestamp_dirs(work_dir):
    return sorted(d for d in os.listdir(work_dir)
                  if _TS.match(d) and osp.isdir(osp.join(work_dir, d)))


def train_log_files(work_dir):
    """A run's training logs, oldest first (a resumed run adds one)."""
    files = []
    for ts in _timestamp_dirs(work_dir):
        vis = osp.join(work_dir, ts, 'vis_data')
        for name in (f'{ts}.json', 'scalars.json'):
            if osp.isfile(osp.join(vis, name)):
                files.append(osp.join(vis, name))
                break
    return files


def read_train_log(work_dir):
    """Training iterations and validation epochs of a run.

    Later logs (a resumed run) replace earlier records of the same
    iteration or epoch.

    Args:
        work_dir (str): The run's work_dir.

    Returns:
        tuple[list[dict], list[dict]]: Training records (with ``loss``,
        ``epoch``, ``iter``), sorted by iteration, and validation records
        (with ``step``, the epoch), sorted by epoch.
    """
    train, val = {}, {}
    for path in train_log_files(work_dir):
        for rec in read_json_lines(path):
            if 'loss' in rec and 'iter' in rec:
                train[rec['iter']] = rec
            elif 'step' in rec and 'lr' not in rec:
                val[rec['step']] = rec
    return ([train[k] for k in sorted(train)], [val[k] for k in sorted(val)])


def read_test_results(work_dir):
    """Every test run of a work_dir, oldest first.

    Returns:
        list[dict]: ``metrics`` (the json record), ``checkpoint`` (from the
        test's ``.log``, None if not found) and ``timestamp`` of each run.
    """
    results = []
    for ts in _timestamp_dirs(work_dir):
        path = osp.join(work_dir, ts, f'{ts}.json')
        if not osp.isfile(path):
            continue
        records = read_json_lines(path)
        if not records:
            continue
        ckpt = None
        log = osp.join(work_dir, ts, f'{ts}.log')
        if osp.isfile(log):
            with open(log, errors='replace') as f:
                found = _CKPT.findall(f.read())
            ckpt = found[-1] if found else None
        results.append(
            dict(metrics=records[-1], checkpoint=ckpt, timestamp=ts))
    return results


def extract_metrics(record):
    """Accuracy, precision, recall, F1 (%) of a test or val record.

    Keys are matched by suffix, so any ``SingleLabelMetric`` prefix works.
    A metric the record lacks is NaN.
    """
    out = {}
    for col, _, suffix in METRICS:
        keys = [k for k in record if k == suffix or k.endswith(suffix)]
        out[col] = float(record[keys[0]]) if keys else math.nan
    return out


def is_run_dir(path):
    return osp.isdir(path) and any(
        osp.isfile(osp.join(path, ts, f'{ts}.json')) or glob.glob(
            osp.join(path, ts, 'vis_data', '*.json'))
        for ts in _timestamp_dirs(path))


def find_run_dirs(paths):
    """Expand each path into run work_dirs (itself or its subfolders)."""
    runs = []
    for path in paths:
        if not osp.isdir(path):
            raise FileNotFoundError(f'work_dir {path} does not exist')
        if is_run_dir(path):
            runs.append(path)
            continue
        subs = sorted(
            osp.join(path, d) for d in os.listdir(path)
            if is_run_dir(osp.join(path, d)))
        if not subs:
            raise FileNotFoundError(
                f'{path} holds no mmengine run: expected '
                '<timestamp>/vis_data/<timestamp>.json (training) or '
                '<timestamp>/<timestamp>.json (tools/test.py) in it or in '
                'its subfolders')
        runs += subs
    return runs


def run_config(work_dir):
    """The config a run saved, and the config name.

    Returns:
        tuple[str, str]: Path of ``<work_dir>/<name>.py`` and ``name``; a
        work_dir without one falls back to the newest
        ``<timestamp>/vis_data/config.py`` and the folder name without a
        ``_seed<N>`` suffix.
    """
    top = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if len(top) > 1:
        names = [osp.basename(p) for p in top]
        raise ValueError(f'{work_dir} holds several configs {names}; give '
                         'each config its own work_dir')
    if top:
        return top[0], osp.splitext(osp.basename(top[0]))[0]
    saved = [
        osp.join(work_dir, ts, 'vis_data', 'config.py')
        for ts in _timestamp_dirs(work_dir)
        if osp.isfile(osp.join(work_dir, ts, 'vis_data', 'config.py'))
    ]
    if not saved:
        raise FileNotFoundError(
            f'{work_dir} holds no saved config (<name>.py or '
            '<timestamp>/vis_data/config.py)')
    name = re.sub(r'[-_]seed\d+$', '', osp.basename(osp.normpath(work_dir)))
    return saved[-1], name


def load_run(work_dir, split='test'):
    """One run's config name, seed and metrics.

    Args:
        work_dir (str): The run's work_dir.
        split (str): ``'test'``: the newest ``tools/test.py`` result;
            ``'val'``: the validation epoch with the best top-1 accuracy,
            the epoch the ``best_*.pth`` checkpoint comes from.

    Returns:
        dict | None: None when the run has no result for ``split``.
    """
    from mmengine.config import Config
    cfg_path, name = run_config(work_dir)
    cfg = Config.fromfile(cfg_path)
    seed = cfg.get('randomness', {}).get('seed')
    if split == 'test':
        results = read_test_results(work_dir)
        if not results:
            return None
        last = results[-1]
        metrics = extract_metrics(last['metrics'])
        ckpt = osp.basename(last['checkpoint']) if last['checkpoint'] \
            else 'unknown checkpoint'
        source = f'test ({ckpt})'
    elif split == 'val':
        _, val = read_train_log(work_dir)
        val = [r for r in val if 'accuracy/top1' in r]
        if not val:
            return None
        best = max(val, key=lambda r: (r['accuracy/top1'], r['step']))
        metrics = extract_metrics(best)
        source = f'val (best epoch {best["step"]})'
    else:
        raise ValueError(f'split must be "test" or "val", got {split!r}')
    return dict(
        work_dir=work_dir, config=name, config_path=cfg_path, seed=seed,
        source=source, **metrics)
