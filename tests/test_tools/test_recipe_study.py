"""tools/analysis_tools/recipe_study.py: each variant edits what it says,
results are resumable files, and the report pairs seeds and images."""
import json
import os.path as osp

import numpy as np
import pytest


@pytest.fixture(scope='module')
def study(tools):
    return tools.load('analysis_tools/recipe_study.py')


def _steps(cfg, loader='train_dataloader'):
    return [s['type'] for s in cfg[loader]['dataset']['pipeline']]


def test_every_variant_builds_for_both_models(study, tmp_path):
    for model in ('efficientnetv2-b0', 'effdsp-b0'):
        for variant in study.VARIANTS:
            cfg = study.build_config(model, variant, 1, str(tmp_path))
            assert cfg.model.backbone.arch == 'b0'
            assert cfg.img_size == study.IMG and cfg.randomness.seed == 1


def test_table_rows_run_the_paper_recipe(study, tmp_path):
    """Every model of tables 2-4 builds with the paper's pipelines (those of
    the EfficientNetV2-B0 base), at B0 size where it is an EfficientNet,
    and differs from the base in its model only."""
    out = str(tmp_path)
    base = study.build_config('efficientnetv2-b0', 'paper', 0, out)
    for model in study.MODELS:
        cfg = study.build_config(model, 'paper', 0, out)
        for loader in ('train_dataloader', 'test_dataloader'):
            assert _steps(cfg, loader) == _steps(base, loader), model
        if cfg.model.backbone.type in ('EfficientNetV2', 'EfficientNetDSP'):
            assert cfg.model.backbone.arch == 'b0'
        assert cfg.img_size == (224 if model in study.NATIVE_224 else
                                study.IMG)
        assert cfg.train_cfg == base.train_cfg
        assert cfg.optim_wrapper == base.optim_wrapper
        assert cfg.param_scheduler == base.param_scheduler
    rows = [m for rows in study.TABLE_ROWS.values() for _, m in rows]
    assert set(rows) == set(study.MODELS)


def test_tables_pair_each_row_with_the_base(study, tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, 300).tolist()
    folder = tmp_path / 'results'
    folder.mkdir()
    for seed in (0, 1):
        # The SAR row is right on every image, the base on about 90 %, the
        # ECA row on about 70 %.
        base = [g if rng.random() < 0.9 else (g + 1) % 4 for g in gt]
        eca = [g if rng.random() < 0.7 else (g + 1) % 4 for g in gt]
        for model, pred in (('efficientnetv2-b0', base),
                            ('efficientnetv2-b0+sar', gt),
                            ('efficientnetv2-b0+eca', eca)):
            name = study.run_name(model, 'paper', seed)
            (folder / f'{name}.json').write_text(
                json.dumps(_result(model, 'paper', seed, pred, gt)))
    tables = study.table_rows(str(folder), n_resamples=200)
    sar = next(r for r in tables['4'] if r['key'] == 'sar')
    assert sar['n'] == 2 and sar['acc'] == [100.0, 100.0]
    ci = sar['delta'][0]
    base_acc = np.mean(tables['4'][0]['acc'])
    assert ci.estimate == pytest.approx(100 - base_acc, abs=0.005)
    assert 0 < ci.low < ci.estimate < ci.high
    assert study.verdict(sar) == 'helps'
    assert study.verdict(tables['3'][1]) == 'hurts'  # ECA
    assert study.verdict(tables['4'][0]) is None  # the base itself
    assert tables['3'][3]['acc'] == sar['acc']  # the same runs
    lines = study.tables_markdown(tables)
    assert any('| +SAR | 97.84 | 97.92 | 2 | 100.00 ± 0.00 |' in line
               for line in lines)
    assert any('| +PFL | 97.53 | 97.18 | 0 | not run yet' in line
               for line in lines)
    verdicts = [line for line in lines if line.startswith('- ')]
    assert len(verdicts) == 2  # SAR once, though in tables 3 and 4
    assert verdicts[0].startswith(
        '- +SAR (`efficientnetv2-b0+sar`, n=2): helps, '
        f'{ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}] points; '
        "the paper's +1.82 is ")
    assert verdicts[1].startswith('- EfficientNetV2+ECA '
                                  '(`efficientnetv2-b0+eca`, n=2): hurts')
    assert any(line.startswith('Cost: 6 runs, ') for line in lines)
    study.plot_tables(tables, str(tmp_path / 'fig.png'))
    assert (tmp_path / 'fig.png').stat().st_size > 10000


def test_variants_change_only_what_they_name(study, tmp_path):
    out = str(tmp_path)
    paper = study.build_config('effdsp-b0', 'paper', 0, out)
    assert {'LabKMeansSegment', 'Rotate', 'RandomGaussianNoise'} <= set(
        _steps(paper))
    assert paper.train_cfg.max_epochs == study.EPOCHS
    no_seg = study.build_config('effdsp-b0', 'no_seg', 0, out)
    for loader in ('train_dataloader', 'test_dataloader'):
        assert 'LabKMeansSegment' not in _steps(no_seg, loader)
    assert _steps(no_seg) == [s for s in _steps(paper)
                              if s != 'LabKMeansSegment']
    fill = study.build_config('effdsp-b0', 'no_seg_rotate_fill', 0, out)
    assert study._step(fill, 'Rotate')['pad_val'] != 0
    flips = study.build_config('efficientnetv2-b0', 'flips_only', 0, out)
    assert _steps(flips) == ['LoadImageFromFile', 'Resize', 'RandomFlip',
                             'PackInputs']
    long = study.build_config('effdsp-b0', 'long', 0, out)
    assert long.train_cfg.max_epochs == 2 * study.EPOCHS
    assert long.param_scheduler[1]['end'] == 2 * study.EPOCHS
    plain_long = study.build_config('effdsp-b0', 'flips_only_long', 0, out)
    assert _steps(plain_long) == _steps(flips)
    assert plain_long.train_cfg.max_epochs == 2 * study.EPOCHS
    temps = [h for h in long.custom_hooks
             if h['type'] == 'ODConvTemperatureHook']
    assert temps[0]['warmup_epochs'] == 20  # 10 of 12 epochs, scaled
    exp = study.build_config('effdsp-b0', 'expanded', 0, out)
    assert exp.train_dataloader.dataset.ann_file == osp.join(
        out, 'expanded', 'train.txt')
    # About the proxy's iterations: 2 passes of 12,314 against 12 of 2,280.
    ratio = 2 * study.EXPANDED_SIZE / (study.EPOCHS * study.TRAIN_SIZE)
    assert exp.train_cfg.max_epochs == 2 and 0.85 < ratio < 1.0


def _lr_per_iteration(cfg, epoch_length):
    """The learning rate of every iteration, as mmengine's runner steps the
    config's schedulers (iteration-based ones each iteration, the others
    each epoch)."""
    import copy

    import torch
    from mmengine.registry import PARAM_SCHEDULERS
    optim = torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                            lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = []
    for sched in copy.deepcopy(cfg.param_scheduler):
        cls = PARAM_SCHEDULERS.get(sched.pop('type'))
        if sched.pop('convert_to_iter_based', False):
            schedulers.append(cls.build_iter_from_epoch(
                optim, **sched, epoch_length=epoch_length))
        else:
            schedulers.append(cls(optim, **sched))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        for _ in range(epoch_length):
            lrs.append(optim.param_groups[0]['lr'])
            optim.step()
            for sched in schedulers:
                if not sched.by_epoch:
                    sched.step()
        for sched in schedulers:
            if sched.by_epoch:
                sched.step()
    return lrs


def test_expanded_keeps_the_proxy_schedule_shape(study, tmp_path):
    """Two passes of the expanded set get the online run's warm-up share,
    peak and decay: an epoch-stepped cosine over 2 epochs never decays."""
    out = str(tmp_path)
    online = _lr_per_iteration(
        study.build_config('effdsp-b0', 'flips_only', 0, out), 20)
    exp_cfg = study.build_config('effdsp-b0', 'expanded', 0, out)
    expanded = _lr_per_iteration(exp_cfg, 120)
    for lrs in (online, expanded):
        n, peak = len(lrs), max(lrs)
        assert lrs.index(peak) in range(n // 4 - 1, n // 4 + 2)
        assert lrs[-1] < 0.05 * peak and lrs[0] < 0.2 * peak
    assert abs(sum(expanded) / len(expanded) -
               sum(online) / len(online)) < 0.05 * max(online)
    temps = [h for h in exp_cfg.custom_hooks
             if h['type'] == 'ODConvTemperatureHook']
    assert temps[0]['by_epoch'] is False


def test_tables_minutes_per_run_ignore_a_contended_run(study, tmp_path):
    """A run that shared the cores (three times slower) does not set the
    row's minutes per run: the median over its seeds does."""
    gt = [0, 1, 2, 3] * 5
    for seed, minutes in ((0, 10.), (1, 30.), (2, 10.)):
        r = _result('efficientnetv2-b0', 'paper', seed, gt, gt)
        r['train_seconds'] = minutes * 60
        (tmp_path / f'{study.run_name("efficientnetv2-b0", "paper", seed)}'
         '.json').write_text(json.dumps(r))
    tables = study.table_rows(str(tmp_path), n_resamples=50)
    assert tables['4'][0]['minutes'] == pytest.approx(10.)
    row = next(line for line in study.tables_markdown(tables)
               if line.startswith('| base |'))
    assert row.endswith('| (base) | 10.0 |')
    # The study's report reads minutes per run the same way.
    row = next(line for line in study.report(str(tmp_path), n_resamples=50)
               if line.startswith('| efficientnetv2-b0 | paper |'))
    assert row.endswith('| 10.0 |')


def _result(model, variant, seed, pred, gt):
    return dict(model=model, variant=variant, seed=seed, pred=pred, gt=gt,
                train_seconds=60., total_seconds=70., metrics={},
                checkpoint='best.pth')


def test_report_pairs_seeds_and_images(study, tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, 200).tolist()
    folder = tmp_path / 'results'
    folder.mkdir()
    for seed in (0, 1, 2):
        # The variant is right on every image, the baseline on about 80 %.
        base = [g if rng.random() < 0.8 else (g + 1) % 4 for g in gt]
        for variant, pred in (('paper', base), ('flips_only', gt)):
            r = _result('effdsp-b0', variant, seed, pred, gt)
            name = study.run_name('effdsp-b0', variant, seed)
            (folder / f'{name}.json').write_text(json.dumps(r))
    lines = study.report(str(folder), 'paper', n_resamples=200)
    row = next(line for line in lines if '| flips_only |' in line)
    cells = [c.strip() for c in row.split('|')]
    assert cells[3] == '3' and cells[4] == '100.00 ± 0.00'
    diff = cells[6]
    estimate, low, high = (float(x) for x in
                           diff.replace('[', ' ').replace(']', ' ')
                           .replace(',', ' ').split()[:3])
    assert 15 < low < estimate < high < 25
    assert '6 runs' in lines[-1]


def test_finished_runs_are_skipped(study, tmp_path, monkeypatch):
    name = study.run_name('effdsp-b0', 'paper', 0)
    (tmp_path / 'results').mkdir()
    (tmp_path / 'results' / f'{name}.json').write_text('{}')
    ran = []
    monkeypatch.setattr(study, '_prepare', lambda out, variants: {})
    monkeypatch.setattr(study, 'run_one',
                        lambda *a: ran.append(a[:3]) or dict(
                            metrics={'accuracy/top1': 90.}, train_seconds=1))
    study.main(['run', str(tmp_path), '--models', 'effdsp-b0', '--variants',
                'paper', 'no_seg', '--seeds', '0'])
    assert ran == [('effdsp-b0', 'no_seg', 0)]


def test_results_folder_option(study, tmp_path, monkeypatch, capsys):
    """--results keeps the result files apart from the work folder: `run`
    skips what is there and `report` reads it without the work folder."""
    results = tmp_path / 'tracked'
    results.mkdir()
    gt = [0, 1, 2, 3] * 5
    r = _result('efficientnetv2-b0', 'paper', 0, gt, gt)
    name = study.run_name('efficientnetv2-b0', 'paper', 0)
    (results / f'{name}.json').write_text(json.dumps(r))
    ran = []
    monkeypatch.setattr(study, '_prepare', lambda out, variants: {})
    monkeypatch.setattr(study, 'run_one',
                        lambda *a: ran.append((a[:3], a[-1])) or dict(
                            metrics={'accuracy/top1': 90.}, train_seconds=1))
    study.main(['run', str(tmp_path / 'work'), '--results', str(results),
                '--models', 'efficientnetv2-b0', '--variants', 'paper',
                'no_seg', '--seeds', '0'])
    assert ran == [(('efficientnetv2-b0', 'no_seg', 0), str(results))]
    study.main(['report', '--results', str(results)])
    assert '| efficientnetv2-b0 | paper | 1 | 100.00 | 100.00 |' in \
        capsys.readouterr().out
    with pytest.raises(SystemExit):
        study.main(['report'])


def test_report_compares_the_two_models(study, tmp_path):
    """A variant both models ran gets a DSP - EfficientNetV2 row, paired by
    seed and image; one model alone gets none."""
    gt = [0, 1, 2, 3] * 25
    wrong = [(g + 1) % 4 for g in gt]
    folder = tmp_path / 'results'
    folder.mkdir()
    for model, pred in (('effdsp-b0', gt[:90] + wrong[90:]),
                        ('efficientnetv2-b0', gt[:80] + wrong[80:])):
        r = _result(model, 'flips_only', 0, pred, gt)
        name = study.run_name(model, 'flips_only', 0)
        (folder / f'{name}.json').write_text(json.dumps(r))
    only = _result('efficientnetv2-b0', 'paper', 0, gt, gt)
    (folder / 'efficientnetv2-b0__paper__seed0.json').write_text(
        json.dumps(only))
    lines = study.report(str(folder), 'paper', n_resamples=200)
    rows = [line for line in lines if line.startswith('| flips_only |')]
    assert len(rows) == 1
    # 90 % against 80 % right on the same 100 images
    assert rows[0].split('|')[2].strip().startswith('+10.00 [')
    assert not any(line.startswith('| paper |') for line in lines)


def test_cost_scales_the_base_minutes_by_the_step_time(study, tmp_path,
                                                       monkeypatch):
    folder = tmp_path / 'results'
    folder.mkdir()
    for seed, minutes in ((0, 10.), (1, 36.), (2, 12.)):
        r = _result('efficientnetv2-b0', 'paper', seed, [0], [0])
        r['train_seconds'] = minutes * 60
        (folder / f'{study.run_name(r["model"], "paper", seed)}.json'
         ).write_text(json.dumps(r))
    real = study.step_seconds(['shufflenetv2'], str(tmp_path), 1, batch=2)
    assert real['shufflenetv2'] > 0
    monkeypatch.setattr(
        study, 'step_seconds', lambda models, out, repeats, batch: dict(
            zip(models, (0.5, 1.5))))
    lines = study.cost(['resnet34'], str(folder), str(tmp_path))
    assert lines[2] == '| efficientnetv2-b0 | 0.50 | 1.00 | 12 |'
    assert lines[3] == '| resnet34 | 1.50 | 3.00 | 36 |'
    assert 'base: 3 measured runs, median 12.0 min' in lines[4]
