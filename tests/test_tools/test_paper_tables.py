"""tools/analysis_tools/paper_tables.py and the figure tools (figs 5, 8, 9,
Grad-CAM).

The work_dirs are written by real (tiny) mmengine runs in this process:
training with validation, tools/test.py-style test runs, so every log is in
exactly the format mmengine 0.10.7 writes. Expected values are read back
from those json files here, independently of the tools.
"""
import csv
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil
import statistics

import cv2
import numpy as np
import pytest
import torch

import mmdsp  # noqa: F401
from mmdsp.utils import work_dir_logs as logs

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_resnet.py')


def _load_tool(rel):
    path = osp.join(REPO_ROOT, 'tools', rel)
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(rel)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pt = _load_tool('analysis_tools/paper_tables.py')
curves_tool = _load_tool('visualization/plot_curves.py')
confusion_tool = _load_tool('visualization/plot_confusion.py')
dropblock_tool = _load_tool('visualization/vis_dropblock.py')
cam_tool = _load_tool('visualization/cam_grid.py')
mm_cam_tool = _load_tool('visualization/vis_cam.py')



def _run(cfg_file, data, work_dir, seed, train, load_from=None):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_file)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{osp.basename(work_dir)}_{int(train)}'
    cfg.load_from = load_from
    runner = Runner.from_cfg(cfg)
    runner.train() if train else runner.test()


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tools):
    """Three real runs: resnet34_all (trained, seed 0; test-only, seed 1)
    and googlenet_all (test-only) -- tiny ResNets named after table rows."""
    root = tmp_path_factory.mktemp('paper_tables')
    data = tools.write_tree(str(root / 'data'), per_class=6)
    os.makedirs(root / 'configs')
    metrics = ("[dict(type='Accuracy', topk=(1, )), "
               "dict(type='SingleLabelMetric', "
               "items=('precision', 'recall', 'f1-score'), average='macro')]")
    cfg_files = {}
    for name in ('resnet34_all', 'googlenet_all'):
        path = str(root / 'configs' / f'{name}.py')
        with open(path, 'w') as f:
            f.write(f'_base_ = [{TINY!r}]\n'
                    "model = dict(head=dict(cal_acc=True))\n"
                    f'val_evaluator = {metrics}\n'
                    "test_evaluator = val_evaluator + "
                    "[dict(type='ConfusionMatrix')]\n"
                    'default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))'
                    '\n')
        cfg_files[name] = path
    work = root / 'work'
    dirs = dict(r0=str(work / 'resnet34_all_seed0'),
                r1=str(work / 'resnet34_all_seed1'),
                g0=str(work / 'googlenet_all'))
    _run(cfg_files['resnet34_all'], data, dirs['r0'], 0, train=True)
    _run(cfg_files['resnet34_all'], data, dirs['r0'], 0, train=False,
         load_from=osp.join(dirs['r0'], 'epoch_2.pth'))
    _run(cfg_files['resnet34_all'], data, dirs['r1'], 1, train=False)
    _run(cfg_files['googlenet_all'], data, dirs['g0'], 2, train=False)
    return dict(root=root, work=str(work), data=data, cfg=cfg_files, **dirs)


def _test_json(work_dir):
    files = [
        p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
        if osp.basename(p)[:-5] == osp.basename(osp.dirname(p))
    ]
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def _train_json(work_dir):
    files = glob.glob(osp.join(work_dir, '*', 'vis_data', '2*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _tiny_params(num_classes):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(TINY)
    cfg.model.head.num_classes = num_classes
    return sum(p.numel() for p in MODELS.build(cfg.model).parameters())


def test_reads_test_runs(runs):
    results = logs.read_test_results(runs['r0'])
    assert len(results) == 1
    assert results[0]['metrics'] == _test_json(runs['r0'])
    assert osp.basename(results[0]['checkpoint']) == 'epoch_2.pth'
    assert logs.run_config(runs['r0'])[1] == 'resnet34_all'
    metrics = logs.extract_metrics(_test_json(runs['r1']))
    assert metrics['f1'] == _test_json(runs['r1'])['single-label/f1-score']


def test_tables_from_test_runs(runs, tmp_path):
    out = str(tmp_path / 'tables')
    pt.main([runs['work'], '--out-dir', out, '--img-size', '32'])
    for name in ('table2', 'table3', 'table4'):
        assert osp.isfile(osp.join(out, f'{name}.md'))
    rows = {r['row']: r for r in _read_csv(osp.join(out, 'table2.csv'))}

    accs = [_test_json(runs[k])['accuracy/top1'] for k in ('r0', 'r1')]
    f1s = [_test_json(runs[k])['single-label/f1-score'] for k in ('r0', 'r1')]
    r34 = rows['resnet34']
    assert r34['config'] == 'resnet34_all' and r34['n_runs'] == '2'
    assert float(r34['accuracy_mean']) == pytest.approx(statistics.fmean(accs))
    assert float(r34['accuracy_std']) == pytest.approx(statistics.stdev(accs))
    assert float(r34['f1_mean']) == pytest.approx(statistics.fmean(f1s))
    assert r34['seeds'] == '0 1'
    # The paper's numbers sit next to ours.
    assert float(r34['paper_accuracy']) == 94.10
    assert float(r34['paper_params_m']) == 21.79

    g = rows['googlenet']
    assert g['n_runs'] == '1' and g['accuracy_std'] == ''
    assert float(g['accuracy_mean']) == pytest.approx(
        _test_json(runs['g0'])['accuracy/top1'])
    assert rows['alexnet']['n_runs'] == '0'
    assert rows['alexnet']['accuracy_mean'] == ''
    assert float(rows['alexnet']['paper_accuracy']) == 86.34

    # Params of the configured (2-class) model and with a 1000-class head.
    assert float(r34['params_m']) == pytest.approx(_tiny_params(2) / 1e6)
    assert float(r34['params_1000_m']) == pytest.approx(
        _tiny_params(1000) / 1e6)
    assert 0 < float(r34['flops_g']) < float(r34['flops_1000_g'])

    md = open(osp.join(out, 'table2.md')).read()
    line = next(ln for ln in md.splitlines() if ln.startswith('| ResNet34'))
    assert f'{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}' \
        in line and '| 94.10 |' in line
    t3 = _read_csv(osp.join(out, 'table3.csv'))
    assert [r['n_runs'] for r in t3] == ['0'] * 4
    assert len(_read_csv(osp.join(out, 'runs.csv'))) == 3


def test_val_split_uses_best_epoch(runs, tmp_path):
    out = str(tmp_path / 'val')
    pt.main([runs['work'], '--out-dir', out, '--split', 'val',
             '--no-complexity'])
    val = [r for r in _train_json(runs['r0']) if 'accuracy/top1' in r]
    best = max(val, key=lambda r: (r['accuracy/top1'], r['step']))
    (row, ) = _read_csv(osp.join(out, 'runs.csv'))  # test-only runs skipped
    assert row['source'] == f'val (best epoch {best["step"]})'
    assert float(row['accuracy']) == pytest.approx(best['accuracy/top1'])
    t2 = {r['row']: r for r in _read_csv(osp.join(out, 'table2.csv'))}
    assert t2['resnet34']['params_m'] == ''


def test_assign_overrides_patterns(runs, tmp_path):
    out = str(tmp_path / 'assign')
    pt.main([runs['g0'], '--out-dir', out, '--no-complexity', '--assign',
             'googlenet_all=t3:sar'])
    t3 = {r['row']: r for r in _read_csv(osp.join(out, 'table3.csv'))}
    assert t3['sar']['config'] == 'googlenet_all'
    t2 = {r['row']: r for r in _read_csv(osp.join(out, 'table2.csv'))}
    assert t2['googlenet']['n_runs'] == '0'
    with pytest.raises(ValueError, match='t9:nothing'):
        pt.parse_assign(['x=t9:nothing'])


def test_row_patterns():
    names = ['efficientnetv2-s_all', 'efficientnetv2-s_sar_all',
             'effdsp_all', 'resnet34_sar_all', 'effdsp_dyodconv_all']
    chosen = pt._match_rows(names, {})
    assert chosen[('2', 'efficientnetv2')] == 'efficientnetv2-s_all'
    assert chosen[('3', 'se')] == 'efficientnetv2-s_all'
    assert chosen[('3', 'sar')] == 'efficientnetv2-s_sar_all'
    assert chosen[('4', 'sar')] == 'efficientnetv2-s_sar_all'
    assert chosen[('4', 'dyodconv')] == 'effdsp_dyodconv_all'
    assert chosen[('4', 'dsp')] == 'effdsp_all'
    assert 'resnet34_sar_all' not in chosen.values()


def test_bad_work_dirs_are_named(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing_dir'):
        logs.find_run_dirs([str(tmp_path / 'missing_dir')])
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='no mmengine run'):
        logs.find_run_dirs([str(empty)])

    # A copy of the training run only: no test result, so it is skipped.
    train_only = tmp_path / 'train_only'
    train_only.mkdir()
    shutil.copy(osp.join(runs['r0'], 'resnet34_all.py'), train_only)
    ts = osp.basename(osp.dirname(osp.dirname(
        glob.glob(osp.join(runs['r0'], '*', 'vis_data', '2*.json'))[0])))
    shutil.copytree(osp.join(runs['r0'], ts, 'vis_data'),
                    train_only / ts / 'vis_data')
    assert logs.load_run(str(train_only), 'test') is None
    assert logs.load_run(str(train_only), 'val')['config'] == 'resnet34_all'

    shutil.copy(osp.join(runs['r0'], 'resnet34_all.py'),
                train_only / 'other.py')
    with pytest.raises(ValueError, match='several configs'):
        logs.run_config(str(train_only))

    bad = train_only / ts / 'vis_data' / f'{ts}.json'
    with open(bad, 'a') as f:
        f.write('{"loss": \n')
    with pytest.raises(ValueError, match=f'{ts}.json:'):
        logs.read_train_log(str(train_only))


def test_plot_curves(runs, tmp_path):
    out = str(tmp_path / 'fig8.png')
    curves = curves_tool.main([runs['r0'], '--out', out, '--with-val',
                               '--out-csv', str(tmp_path / 'fig8.csv')])
    records = _train_json(runs['r0'])
    train = [r for r in records if 'loss' in r]
    assert list(curves) == [1, 2]
    for epoch in (1, 2):
        recs = [r for r in train if r['epoch'] == epoch]
        assert curves[epoch]['loss'] == pytest.approx(
            np.mean([r['loss'] for r in recs]))
        assert curves[epoch]['train_acc'] == pytest.approx(
            np.mean([r['accuracy_top-1'] for r in recs]))
        (val, ) = [r for r in records if r.get('step') == epoch
                   and 'loss' not in r]
        assert curves[epoch]['val_acc'] == val['accuracy/top1']
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(FileNotFoundError, match='no training iterations'):
        curves_tool.epoch_curves(runs['g0'])


def test_plot_confusion(runs, tmp_path):
    out = str(tmp_path / 'fig9.png')
    matrix, classes = confusion_tool.main([runs['r0'], '--out', out])
    assert matrix == _test_json(runs['r0'])['confusion_matrix/result']
    assert np.sum(matrix) == 12  # every test image once
    assert classes == ['0', '1']  # CustomDataset: names only at load time
    assert os.path.getsize(out) > 0
    _, classes = confusion_tool.main(
        [runs['r0'], '--out', out, '--classes', 'a', 'b'])
    assert classes == ['a', 'b']
    with pytest.raises(ValueError, match='2-class'):
        confusion_tool.main([runs['r0'], '--out', out, '--classes', 'a'])


def test_dropblock_masks_are_blocks():
    beta = 5
    keep_do, keep_db = dropblock_tool.masks(56, 0.2, beta, seed=0)
    dropped = (~keep_db).astype(np.uint8)
    assert 0.05 < dropped.mean() < 0.4 and 0.1 < 1 - keep_do.mean() < 0.3
    # Every dropped unit lies in a fully dropped beta x beta square: the
    # morphological opening with that square leaves the mask unchanged.
    kernel = np.ones((beta, beta), np.uint8)
    assert np.array_equal(cv2.morphologyEx(dropped, cv2.MORPH_OPEN, kernel),
                          dropped)
    # Dropout's single units do not survive the opening.
    dropped_do = (~keep_do).astype(np.uint8)
    assert cv2.morphologyEx(dropped_do, cv2.MORPH_OPEN, kernel).sum() \
        < dropped_do.sum()


def test_vis_dropblock_and_cam_write_pngs(runs, tmp_path):
    image = osp.join(runs['data'], 'a', '0.png')
    out = str(tmp_path / 'fig5.png')
    dropblock_tool.main([image, '--out', out, '--grid', '14',
                         '--block-size', '3', '--depth', '2'])
    assert cv2.imread(out) is not None
    with pytest.raises(FileNotFoundError, match='nope.png'):
        dropblock_tool.main([str(tmp_path / 'nope.png'), '--out', out])

    cams = str(tmp_path / 'cams')
    rows = cam_tool.main([
        runs['cfg']['resnet34_all'],
        osp.join(runs['r0'], 'epoch_2.pth'), image,
        osp.join(runs['data'], 'b', '1.png'), '--out-dir', cams,
        '--grid', str(tmp_path / 'grid.png'), '--device', 'cpu'
    ])
    assert [r['error'] for r in rows] == ['', '']
    for r in rows:
        assert cv2.imread(r['cam_path']).shape[:2] == (24, 24)
    assert cv2.imread(str(tmp_path / 'grid.png')) is not None


def test_mmpretrain_vis_cam_on_dsp(tmp_path, tools, repo_root):
    """MMPretrain's vis_cam (grad-cam 1.4.8) through our wrapper, on an
    EfficientNet-DSP: its SAR, Dy-ODConv and DyDropBlock must be registered
    before MMPretrain's tool builds the model."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg_file = osp.join(repo_root, 'configs', 'demo', 'effdsp_synthetic.py')
    cfg = Config.fromfile(cfg_file)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'dsp.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    data = tools.write_tree(str(tmp_path / 'data'), per_class=1, size=64)
    image = osp.join(data, 'a', '0.png')
    env = tools.env(data)
    for method in ('GradCAM', 'GradCAM++'):
        out = tmp_path / f'{method}.png'
        tools.run('visualization/vis_cam.py', image, cfg_file, ckpt,
                  '--method', method, '--save-path', out, env=env)
        cam = cv2.imread(str(out))
        # The overlay is drawn on the test pipeline's input (img_size).
        assert cam.shape == (cfg.img_size, cfg.img_size, 3)
        assert cam.std() > 1
    _, log = tools.run('visualization/vis_cam.py', image, cfg_file, ckpt,
                       '--target-layers', 'backbone.nope', env=env,
                       check=False)
    assert 'Cannot get the layer "backbone.nope"' in log


def test_vis_cam_names_the_grad_cam_it_needs(monkeypatch):
    from importlib.metadata import PackageNotFoundError
    assert mm_cam_tool.check_grad_cam() == '1.4.8'

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(mm_cam_tool, 'version', missing)
    with pytest.raises(SystemExit, match='grad-cam==1.4.8.*cam_grid.py'):
        mm_cam_tool.check_grad_cam()
    monkeypatch.setattr(mm_cam_tool, 'version', lambda name: '1.5.0')
    with pytest.raises(SystemExit, match='found 1.5.0'):
        mm_cam_tool.check_grad_cam()


def test_shipped_configs_find_their_rows(repo_root):
    # The file names of configs/ablation and configs/attention, as the
    # tables see them (the config name saved in each work_dir).
    names = [
        osp.splitext(osp.basename(p))[0]
        for sub in ('ablation', 'attention', 'baselines')
        for p in glob.glob(osp.join(repo_root, 'configs', sub, '*.py'))
    ]
    chosen = pt._match_rows(sorted(set(names)), {})
    assert chosen[('4', 'base')] == 'base_all'
    assert chosen[('4', 'dydropblock')] == 'dydropblock_all'
    assert chosen[('4', 'pfl')] == 'pfl_all'
    assert chosen[('4', 'dyodconv')] == 'dyodconv_all'
    assert chosen[('4', 'sar')] == 'sar_all'
    assert chosen[('4', 'dsp')] == 'effdsp_all'
    for tag in ('eca', 'cbam'):
        assert chosen[('3', tag)] == f'efficientnetv2-s_{tag}_all'
    assert chosen[('2', 'dsp')] == 'effdsp_all'


def test_paper_f1_column_beside_mmpretrains(runs, tmp_path):
    out = str(tmp_path / 'f1')
    pt.main([runs['work'], '--out-dir', out, '--no-complexity'])
    rows = {r['row']: r for r in _read_csv(osp.join(out, 'table2.csv'))}
    recs = [_test_json(runs[k]) for k in ('r0', 'r1')]
    conv = [2 * r['single-label/precision'] * r['single-label/recall'] /
            (r['single-label/precision'] + r['single-label/recall'])
            for r in recs]
    r34 = rows['resnet34']
    assert float(r34['f1_paper_conv_mean']) == pytest.approx(
        statistics.fmean(conv))
    assert float(r34['f1_mean']) == pytest.approx(
        statistics.fmean(r['single-label/f1-score'] for r in recs))
    md = open(osp.join(out, 'table2.md')).read()
    assert 'F1 (%), mean of per-class F1 (MMPretrain)' in md
    assert 'F1 (%), 2PR/(P+R) of macro P, R (paper)' in md
    line = next(ln for ln in md.splitlines() if ln.startswith('| ResNet34'))
    assert f'{statistics.fmean(conv):.2f} ± {statistics.stdev(conv):.2f} ' \
        '| 94.22 |' in line


def test_intervals_and_paired_differences(tmp_path, tools):
    """Two test-only runs named after table 2's DSP and EfficientNetV2
    rows, with BootstrapCI in the test_evaluator and prediction dumps."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmdsp.evaluation import paired_bootstrap_ci
    from mmdsp.evaluation.dumps import align_predictions, load_predictions
    from mmdsp.evaluation.functional import accuracy
    data = tools.write_tree(str(tmp_path / 'data'), per_class=6)
    work = tmp_path / 'work'
    for seed, name in ((0, 'effdsp_all'), (1, 'efficientnetv2-s_all')):
        path = tmp_path / f'{name}.py'
        path.write_text(f'_base_ = [{TINY!r}]\n')
        cfg = Config.fromfile(str(path))
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].dataset.data_root = data
        cfg.work_dir = str(work / name)
        cfg.randomness = dict(seed=seed)
        cfg.test_evaluator = [
            dict(type='Accuracy', topk=(1, )),
            dict(type='SingleLabelMetric', average='macro'),
            dict(type='AUROC'),
            dict(type='BootstrapCI', n_resamples=200),
            dict(type='DumpResults',
                 out_file_path=str(work / name / 'preds.pkl'))
        ]
        Runner.from_cfg(cfg).test()
    out = str(tmp_path / 'tables')
    pt.main([str(work), '--out-dir', out, '--no-complexity',
             '--n-resamples', '300'])
    ci = {r['config']: r for r in _read_csv(osp.join(out, 'intervals.csv'))}
    rec = _test_json(str(work / 'effdsp_all'))
    dsp = ci['effdsp_all']
    assert float(dsp['accuracy']) == rec['accuracy/top1']
    assert float(dsp['accuracy_low']) == rec['bootstrap/accuracy_low']
    assert float(dsp['auroc_high']) == rec['bootstrap/auroc_high']
    (pair, ) = _read_csv(osp.join(out, 'paired.csv'))
    assert pair['comparison'] == 'EfficientNet-DSP (ours) − EfficientNetV2'
    a, b = align_predictions(
        load_predictions(str(work / 'effdsp_all' / 'preds.pkl')),
        load_predictions(str(work / 'efficientnetv2-s_all' / 'preds.pkl')))
    ref = paired_bootstrap_ci(accuracy, (a['probs'], a['labels']),
                              (b['probs'], b['labels']), n_resamples=300)
    assert float(pair['accuracy_diff']) == pytest.approx(ref.estimate)
    assert float(pair['accuracy_low']) == pytest.approx(ref.low)
    assert float(pair['accuracy_high']) == pytest.approx(ref.high)
    md = open(osp.join(out, 'tables.md')).read()
    assert '95 % bootstrap intervals' in md and 'Paired differences' in md
