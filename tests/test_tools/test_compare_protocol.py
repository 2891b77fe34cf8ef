"""tools/gpu/compare.sh, the GPU protocol, run end to end on the CPU.

A GPU session has 15 device minutes at most, so the script must be known to
work before it gets there: here it runs as on the GPU (mask cache for the
paper's recipe, tools/dist_train.sh and tools/dist_test.sh through torchrun, tables) with AMP
off, B0 size, 32 px, 2 epochs, on a small synthetic data set and its own
split.
"""
import csv
import os.path as osp
import re
import statistics

import pytest

# Table columns and the test log's metric keys.
LOGGED = (('accuracy', 'accuracy/top1'),
          ('precision', 'single-label/precision'),
          ('recall', 'single-label/recall'),
          ('f1', 'single-label/f1-score'))


def logged_test_metrics(log_file):
    """The metrics of the last ``Epoch(test)`` line tools/test.py printed
    into ``log_file`` (4 decimals)."""
    with open(log_file) as f:
        lines = [line for line in f if 'Epoch(test)' in line]
    assert lines, f'no Epoch(test) line in {log_file}'
    found = dict(re.findall(r'([\w/-]+): (-?\d+\.\d+)', lines[-1]))
    return {col: float(found[key]) for col, key in LOGGED}


def test_compare_sh_on_cpu(tmp_path, tools):
    data = str(tmp_path / 'synthetic')
    tools.run('dataset_converters/make_synthetic_all.py', data,
              '--num-per-class', '10', '--size', '48', env=tools.env(data))
    work = tmp_path / 'work'
    # The synthetic smears all look alike to split_all.py's duplicate
    # search (test_split_all.py); their own stratified split is used.
    env = tools.env(data, EPOCHS='2', AMP='0', ARCH='b0', IMG='32',
                    NUM_WORKERS='0', PORT=str(tools.free_port()),
                    SPLIT_DIR=data, SEED='3')
    _, log = tools.run('gpu/compare.sh', data, work, env=env, timeout=900)

    # The default recipe removes no background: no mask cache is made.
    assert 'no mask cache' in log and not (work / 'seg_cache').exists()
    for name in ('efficientnetv2-s_all', 'effdsp_all'):
        assert f'test {name} with best_accuracy_top1_epoch_' in log, log[-3000:]
        assert 'Epoch(test)' in (work / f'{name}.test.log').read_text()
    with open(work / 'split' / 'train.txt') as f:
        assert sum(1 for line in f if line.strip()) == 28  # 7/10 of 40
    with open(work / 'tables' / 'table2.csv') as f:
        rows = {r['row']: r for r in csv.DictReader(f)}
    for row, config in (('efficientnetv2', 'efficientnetv2-s_all'),
                        ('dsp', 'effdsp_all')):
        assert rows[row]['config'] == config
        assert rows[row]['n_runs'] == '1'
        assert rows[row]['seeds'] == '3'
        # The table's numbers are the test log's (one run: no std).
        logged = logged_test_metrics(work / f'{config}.test.log')
        for col, value in logged.items():
            assert float(rows[row][f'{col}_mean']) == pytest.approx(
                value, abs=1e-4), (row, col)
            assert rows[row][f'{col}_std'] == ''
        # Params of the 4-class models as trained (B0 size, not S),
        # counted here.
        assert float(rows[row]['params_m']) == pytest.approx(
            _b0_params(config) / 1e6, abs=1e-6)
    assert rows['resnet34']['n_runs'] == '0'
    assert osp.isfile(work / 'tables' / 'table2.md')


def _b0_params(config):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import mmdsp  # noqa: F401
    cfg = Config.fromfile(osp.join(osp.dirname(osp.dirname(
        osp.dirname(osp.abspath(__file__)))), 'configs', f'{config}.py'))
    cfg.model.backbone.arch = 'b0'
    return sum(p.numel() for p in MODELS.build(cfg.model).parameters())


def test_compare_sh_fails_when_a_model_has_no_result(tmp_path, tools):
    data = str(tmp_path / 'synthetic')
    tools.run('dataset_converters/make_synthetic_all.py', data,
              '--num-per-class', '2', '--size', '48', env=tools.env(data))
    # GPUS=2: the torchrun branch (tools/dist_train.sh), two CPU ranks.
    env = tools.env(data, EPOCHS='2', AMP='0', MODELS='no_such_config',
                    NUM_WORKERS='0', SPLIT_DIR=data, GPUS='2',
                    PORT=str(tools.free_port()))
    work = tmp_path / 'work'
    rc, log = tools.run('gpu/compare.sh', data, work, env=env, check=False)
    assert rc == 1, log[-3000:]
    assert 'no test result for: no_such_config' in log
    train_log = (work / 'no_such_config.train.log').read_text()
    assert 'configs/no_such_config.py' in train_log
    assert 'torch.distributed' in train_log


def test_compare_sh_segments_for_the_paper_recipe(tmp_path, tools):
    """A config that removes the background gets the mask cache, and a
    config in a sub-folder its own log folder (training cut after 1 s)."""
    data = str(tmp_path / 'synthetic')
    tools.run('dataset_converters/make_synthetic_all.py', data,
              '--num-per-class', '2', '--size', '48', env=tools.env(data))
    env = tools.env(data, EPOCHS='2', AMP='0', NUM_WORKERS='0',
                    SPLIT_DIR=data, TRAIN_TIMEOUT='1',
                    MODELS='paper_recipe/efficientnetv2-s_all')
    work = tmp_path / 'work'
    rc, log = tools.run('gpu/compare.sh', data, work, env=env, check=False)
    assert rc == 1, log[-3000:]
    assert f'segment into {work}/seg_cache' in log
    assert len(list((work / 'seg_cache').rglob('*_mask.png'))) == 8
    assert (work / 'paper_recipe' / 'efficientnetv2-s_all.train.log').exists()


def test_compare_sh_several_seeds(tmp_path, tools):
    """SEEDS: each model once per seed, in seed<k>/, and one table row with
    mean +- std over them."""
    data = str(tmp_path / 'synthetic')
    tools.run('dataset_converters/make_synthetic_all.py', data,
              '--num-per-class', '6', '--size', '48', env=tools.env(data))
    work = tmp_path / 'work'
    env = tools.env(data, EPOCHS='2', AMP='0', ARCH='b0', IMG='32',
                    NUM_WORKERS='0', SPLIT_DIR=data, SEEDS='1 2',
                    MODELS='efficientnetv2-s_all')
    _, log = tools.run('gpu/compare.sh', data, work, env=env, timeout=900)
    for seed in (1, 2):
        assert f'seed {seed}' in log
        assert 'Epoch(test)' in (
            work / f'seed{seed}' / 'efficientnetv2-s_all.test.log').read_text()
    with open(work / 'tables' / 'table2.csv') as f:
        rows = {r['row']: r for r in csv.DictReader(f)}
    assert rows['efficientnetv2']['n_runs'] == '2'
    assert rows['efficientnetv2']['seeds'] == '1 2'
    # Mean and sample std over the seeds of the two test logs.
    logged = [logged_test_metrics(
        work / f'seed{seed}' / 'efficientnetv2-s_all.test.log')
        for seed in (1, 2)]
    for col, _ in LOGGED:
        values = [m[col] for m in logged]
        assert float(rows['efficientnetv2'][f'{col}_mean']) == \
            pytest.approx(statistics.fmean(values), abs=1e-4), col
        assert float(rows['efficientnetv2'][f'{col}_std']) == \
            pytest.approx(statistics.stdev(values), abs=1e-4), col
    assert '±' in (work / 'tables' / 'table2.md').read_text()
