import csv
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.registry import MODELS, TRANSFORMS

import mmdsp  # noqa: F401
from mmdsp.apis import GradCAM, collect_inputs, predict

CLASSES = ['Benign', 'Early', 'Pre']
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@TRANSFORMS.register_module(force=True)
class _ToySegment:
    """Stands in for LabKMeansSegment: flags dark images as fallbacks."""

    def __call__(self, results):
        results['seg_fallback'] = bool(results['img'].mean() < 100)
        return results


def _config_text(segment=False):
    seg = "dict(type='_ToySegment'), " if segment else ''
    return f"""
custom_imports = dict(imports=['mmdsp'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=64,
              loss=dict(type='PolyFocalLoss')))
data_preprocessor = dict(num_classes=3, mean=[128.] * 3, std=[64.] * 3,
                         to_rgb=True)
test_pipeline = [dict(type='LoadImageFromFile'), {seg}
                 dict(type='Resize', scale=(32, 32)),
                 dict(type='PackInputs')]
test_dataloader = dict(batch_size=2, dataset=dict(
    type='CustomDataset', data_root='unused', pipeline=test_pipeline))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('predict')
    cfg_file = root / 'tiny.py'
    cfg_file.write_text(_config_text())
    seg_file = root / 'tiny_seg.py'
    seg_file.write_text(_config_text(segment=True))
    cfg = Config.fromfile(str(cfg_file))
    torch.manual_seed(0)
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    # non-trivial BN statistics so that eval mode matters
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ckpt = root / 'tiny.pth'
    torch.save(
        {
            'state_dict': model.state_dict(),
            'meta': {
                'dataset_meta': {
                    'classes': CLASSES
                }
            }
        }, ckpt)

    imgs = root / 'imgs'
    (imgs / 'sub').mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = []
    for i, (h, w, level) in enumerate([(40, 40, 200), (37, 52, 60),
                                       (64, 48, 150)]):
        img = rng.integers(0, level, (h, w, 3), dtype=np.uint8)
        p = imgs / f'cell{i}.png'
        cv2.imwrite(str(p), img)
        good.append(str(p))
    grey = imgs / 'sub' / 'grey.jpg'
    cv2.imwrite(str(grey), rng.integers(0, 255, (30, 30), dtype=np.uint8))
    good.append(str(grey))
    corrupt = imgs / 'sub' / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg' * 3)
    empty = imgs / 'empty.png'
    empty.write_bytes(b'')
    (imgs / 'notes.txt').write_text('not an image')
    return dict(root=root,
                cfg=str(cfg_file),
                seg_cfg=str(seg_file),
                ckpt=str(ckpt),
                imgs=str(imgs),
                good=sorted(good),
                bad=sorted([str(corrupt), str(empty)]),
                model=model.eval())


def _expected_probs(model, path):
    """Independent preprocessing: cv2 read, resize, normalise, forward."""
    img = mmcv.imread(path)  # BGR, like LoadImageFromFile
    img = mmcv.imresize(img, (32, 32))
    x = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).float()
    x = ((x - 128) / 64)[None]
    with torch.no_grad():
        return model(x, mode='tensor').softmax(1)[0].numpy()


def test_collect_inputs(setup):
    files = collect_inputs([setup['imgs']])
    assert sorted(files) == sorted(setup['good'] + setup['bad'])
    assert not any(f.endswith('.txt') for f in files)
    globbed = collect_inputs([
        osp.join(setup['imgs'], '**', '*.jpg'), setup['good'][0],
        setup['good'][0]
    ])
    assert set(globbed) == {
        osp.join(setup['imgs'], 'sub', 'corrupt.jpg'),
        osp.join(setup['imgs'], 'sub', 'grey.jpg'), setup['good'][0]
    }
    assert collect_inputs('nope/*.png') == ['nope/*.png']


def test_predict_rows_match_independent_forward(setup):
    missing = osp.join(setup['imgs'], 'missing.png')
    rows = predict(setup['cfg'],
                   setup['ckpt'], [setup['imgs'], missing],
                   batch_size=2,
                   device='cpu',
                   progress=False)
    by_path = {r['path']: r for r in rows}
    assert len(rows) == 7
    for p in setup['good']:
        r = by_path[p]
        assert r['error'] == ''
        np.testing.assert_allclose(r['scores'],
                                   _expected_probs(setup['model'], p),
                                   atol=1e-5)
        assert r['pred_class'] == CLASSES[int(np.argmax(r['scores']))]
        assert r['seg_fallback'] is None
    for p in setup['bad'] + [missing]:
        assert by_path[p]['error'] and by_path[p]['scores'] is None
    assert 'no such file' in by_path[missing]['error']
    # batching does not change results
    rows1 = predict(setup['cfg'],
                    setup['ckpt'],
                    setup['good'],
                    batch_size=1,
                    device='cpu',
                    progress=False)
    for r in rows1:
        np.testing.assert_allclose(r['scores'],
                                   by_path[r['path']]['scores'],
                                   atol=1e-5)




def test_cli_csv_exit_code_and_cam(setup, tmp_path, tools):
    tool = tools.load('predict.py')
    out = tmp_path / 'res' / 'results.csv'
    cam_dir = tmp_path / 'cams'
    rc = tool.main([
        setup['seg_cfg'], setup['ckpt'], setup['imgs'], '--out',
        str(out), '--cam-dir',
        str(cam_dir), '--batch-size', '3', '--device', 'cpu', '--no-progress'
    ])
    assert rc == 1
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == [
        'path', 'pred_class', *CLASSES, 'seg_fallback', 'error', 'cam_path'
    ]
    by_path = {r['path']: r for r in rows}
    assert set(by_path) == set(setup['good'] + setup['bad'])
    for p in setup['good']:
        r = by_path[p]
        probs = np.array([float(r[c]) for c in CLASSES])
        assert r['error'] == '' and probs.sum() == pytest.approx(1, abs=1e-5)
        assert r['pred_class'] == CLASSES[int(probs.argmax())]
        img = mmcv.imread(p)
        assert r['seg_fallback'] == str(bool(img.mean() < 100))
        cam = cv2.imread(r['cam_path'])
        assert cam.shape == img.shape[:2] + (3, )
    for p in setup['bad']:
        r = by_path[p]
        assert r['error'] and r['pred_class'] == '' and r['Benign'] == ''
    assert by_path[setup['good'][1]]['seg_fallback'] == 'True'  # dark one
    # all readable: exit code 0, no segmentation step: empty flag
    out2 = tmp_path / 'ok.csv'
    assert tool.main([
        setup['cfg'], setup['ckpt'], *setup['good'], '--out',
        str(out2), '--no-progress'
    ]) == 0
    with open(out2, newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(r['seg_fallback'] == '' for r in rows)
    assert 'cam_path' not in rows[0]


def test_gradcam_equals_cam_for_gap_linear_model():
    # For conv -> global average pool -> linear, Grad-CAM of class k is
    # ReLU(sum_c w_kc A_c) up to scale (the original CAM).
    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = nn.Conv2d(3, 5, 3, padding=1)
            self.fc = nn.Linear(5, 2)

        def forward(self, x, mode='tensor'):
            return self.fc(self.backbone(x).mean((2, 3)))

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 6, 7)
    cams = GradCAM(net, net.backbone)(x, torch.tensor([1, 0]))
    act = net.backbone(x).detach()
    for i, k in enumerate([1, 0]):
        ref = torch.relu(
            (net.fc.weight[k].detach()[:, None, None] * act[i]).sum(0))
        ref = (ref - ref.min()) / (ref.max() - ref.min())
        np.testing.assert_allclose(cams[i], ref.numpy(), atol=1e-5)
    assert net.fc.weight.grad is None  # no parameter gradients left behind


def test_bad_config_and_checkpoint(setup, tmp_path):
    cfg = Config.fromfile(setup['cfg'])
    cfg.test_dataloader.dataset.pipeline = [dict(type='PackInputs')]
    with pytest.raises(KeyError, match='LoadImageFromFile'):
        predict(cfg, setup['ckpt'], setup['good'], progress=False)
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        predict(setup['cfg'], str(tmp_path / 'nothere.pth'), setup['good'])
    wrong = tmp_path / 'wrong.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(3, 64)}}, wrong)
    with pytest.raises(RuntimeError, match='wrong.pth'):
        predict(setup['cfg'], str(wrong), setup['good'], progress=False)
