"""ood_check.py on a tiny calibrated model: odd sets made on the fly, and
the real test split when the data is present."""
import numpy as np
import pytest
import torch

import mmdsp  # noqa: F401


@pytest.fixture(scope='module')
def calibrated(tmp_path_factory, tools):
    """A tiny 4-class ResNet on synthetic smears (BloodCellsALL layout),
    its temperature and thresholds fitted on a validation split of its own
    and the feature bank from a training split: the test split is held
    out from both. The stage distance is off so that every reported share
    can be recomputed here."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    from mmdsp.datasets.synthetic import make_synthetic_all
    root = tmp_path_factory.mktemp('ood')
    data = str(root / 'data')
    counts = make_synthetic_all(data, num_per_class=15, size=48, seed=3,
                                ratios=(2, 2, 1))
    assert (counts['train'], counts['val'], counts['test']) == (24, 24, 12)
    cfg_file = str(root / 'tiny4.py')
    with open(cfg_file, 'w') as f:
        f.write(f"_base_ = [{tools.config('tiny_resnet.py')!r}]\n"
                'model = dict(head=dict(num_classes=4))\n'
                'data_preprocessor = dict(num_classes=4)\n')
        for split in ('train', 'val', 'test'):
            f.write(f'{split}_dataloader = dict(dataset=dict('
                    f"type='BloodCellsALL', data_root={data!r}, "
                    f"ann_file='{split}.txt'))\n")
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_file).model)
    ckpt = str(root / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    out = str(root / 'cal.pth')
    tools.load('analysis_tools/fit_temperature.py').main([
        cfg_file, ckpt, '--out', out, '--num-workers', '0', '--no-progress',
        '--no-test', '--device', 'cpu', '--flag-rate', 'stage_distance=0'
    ])
    return dict(cfg=cfg_file, ckpt=out, data=data,
                tool=tools.load('analysis_tools/ood_check.py'))


def _independent_flags(cfg_file, ckpt, images):
    """Per image, which of the three scores flags it, from a forward
    written here: BGR -> 32 x 32 bilinear -> RGB, (x - 128) / 64, backbone,
    average pool, linear head; the confidence is the largest softmax of
    logits / T, the energy -logsumexp(logits), the feature distance one
    minus the largest cosine similarity to the stored training features;
    each compared with its stored threshold."""
    import cv2
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    state = torch.load(ckpt, map_location='cpu')
    cal = state['meta']['calibration']
    thr, t = cal['thresholds'], cal['temperature']
    assert set(thr) == {'min_confidence', 'max_energy',
                        'max_feature_distance'}
    model = MODELS.build(Config.fromfile(cfg_file).model)
    model.load_state_dict(state['state_dict'])
    model.eval()
    x = np.stack([
        cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        for img in images
    ]).astype(np.float32)
    x = torch.from_numpy((x - 128) / 64).permute(0, 3, 1, 2)
    with torch.no_grad():
        feats = model.backbone(x)[-1].mean(dim=(2, 3)).double()
        logits = feats @ model.head.fc.weight.double().t() + \
            model.head.fc.bias.double()
    conf = torch.softmax(logits / t, 1).max(1).values
    energy = -torch.logsumexp(logits, 1)
    bank = cal['feature_bank'].double()
    cos = (feats / feats.norm(dim=1, keepdim=True)) @ (
        bank / bank.norm(dim=1, keepdim=True)).t()
    dist = 1 - cos.max(1).values
    return dict(confidence=(conf < thr['min_confidence']).numpy(),
                energy=(energy > thr['max_energy']).numpy(),
                feature_distance=(dist > thr['max_feature_distance']).numpy())


def test_held_out_split_and_odd_sets_against_a_recount(calibrated, capsys):
    """Every share ood_check.py reports, recomputed independently on the
    same images: the held-out test split as the real one (so that a
    detector that flags everything fails), synthetic smears, photos and
    zoomed test images."""
    import os.path as osp

    import cv2
    tool = calibrated['tool']
    data = calibrated['data']
    res = tool.main([calibrated['cfg'], calibrated['ckpt'], '--data-root',
                     data, '--split-file', osp.join(data, 'test.txt'),
                     '--n-odd', '6', '--device', 'cpu'])
    assert [r['set'] for r in res] == [
        'real test split', 'synthetic smears', 'photos (grace_hopper crops)',
        'real cells zoomed 2-4x']
    with open(osp.join(data, 'test.txt')) as f:
        test = [osp.join(data, line.rsplit(' ', 1)[0]) for line in f]
    assert len(test) == 12
    # The tool's odd sets, drawn again in its order from its seed.
    rng = np.random.default_rng(0)
    sets = [[cv2.imread(p) for p in test], tool.synthetic_set(6, rng),
            tool.photo_set(6, rng), tool.zoom_set(test, 6, rng)]
    for r, images in zip(res, sets):
        flags = _independent_flags(calibrated['cfg'], calibrated['ckpt'],
                                   images)
        assert r['images'] == len(images) and r['failed'] == 0
        for kind, hit in flags.items():
            assert r[kind] == pytest.approx(100 * hit.mean()), (r['set'],
                                                                 kind)
        assert r['stage_distance'] == 0 and r['seg_fallback'] == 0
        any_flag = np.any(list(flags.values()), axis=0)
        assert r['flagged'] == pytest.approx(100 * any_flag.mean()), r
    # Held-out images of the training distribution are mostly judged
    # (measured 3 of 12 flagged, one per score: the untrained model's
    # thresholds are the 99th percentiles of 24 validation images); the
    # photos are not (6 of 6, all by feature distance).
    assert res[0]['flagged'] <= 50
    assert res[2]['flagged'] >= 50 and res[2]['feature_distance'] >= 50
    out = capsys.readouterr().out
    assert f"real test images flagged: {res[0]['flagged']:.2f} %" in out


def test_odd_sets_without_real_data(calibrated, capsys):
    tool = calibrated['tool']
    res = tool.main([calibrated['cfg'], calibrated['ckpt'], '--skip-real',
                     '--n-odd', '4', '--device', 'cpu'])
    assert [r['set'] for r in res] == ['synthetic smears',
                                       'photos (grace_hopper crops)']
    from mmdsp.apis import Predictor
    pred = Predictor(calibrated['cfg'], calibrated['ckpt'], 'cpu')
    rng = np.random.default_rng(0)
    for r, images in zip(res, (tool.synthetic_set(4, rng),
                               tool.photo_set(4, rng))):
        rows = pred.predict_arrays(images)
        assert r['images'] == 4 and r['failed'] == 0
        assert r['flagged'] == pytest.approx(
            100 * np.mean([bool(x['flag_reason']) for x in rows]))
    out = capsys.readouterr().out
    assert '| synthetic smears' in out and 'flagged (%)' in out


def test_zoom_set_is_a_centre_crop(calibrated, tmp_path):
    import cv2
    img = np.zeros((240, 320, 3), np.uint8)
    img[100:140, 140:180] = 255  # a 40 px white square in the centre
    path = str(tmp_path / 'cell.png')
    cv2.imwrite(path, img)
    (zoomed, ) = calibrated['tool'].zoom_set([path], 1,
                                             np.random.default_rng(0))
    assert zoomed.shape == (224, 224, 3)
    # The square covers 1600 / (240 * 320) of the image and z^2 times that
    # of a centre crop zoomed z = 2..4 times: 8.3 % to 33 %.
    white = (zoomed[..., 0] > 128).mean()
    assert 0.075 < white < 0.36


def test_real_test_split(calibrated, real_data, capsys):
    tool = calibrated['tool']
    import os.path as osp
    res = tool.main([calibrated['cfg'], calibrated['ckpt'], '--data-root',
                     osp.join(real_data, 'Original'), '--max-real', '6',
                     '--n-odd', '3', '--device', 'cpu'])
    assert [r['set'] for r in res] == [
        'real test split', 'synthetic smears', 'photos (grace_hopper crops)',
        'real cells zoomed 2-4x']
    assert res[0]['images'] == 6 and res[3]['images'] == 3
    assert 'real test images flagged' in capsys.readouterr().out
    paths = tool.real_test_paths(osp.join(real_data, 'Original'),
                                 tool.parse_args(['c', 'k']).split_file)
    assert len(paths) == 324 and all(osp.isfile(p) for p in paths[:5])
    with pytest.raises(FileNotFoundError, match='nowhere'):
        tool.real_test_paths('nowhere', 'x.txt')
