"""ood_check.py on a tiny calibrated model: odd sets made on the fly, and
the real test split when the data is present."""
import numpy as np
import pytest
import torch

import mmdsp  # noqa: F401


@pytest.fixture(scope='module')
def calibrated(tmp_path_factory, tools):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    root = tmp_path_factory.mktemp('ood')
    data = tools.write_tree(str(root / 'data'), per_class=6)
    cfg_file = tools.tiny_config(root, data)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    ckpt = str(root / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    out = str(root / 'cal.pth')
    tools.load('analysis_tools/fit_temperature.py').main([
        str(cfg_file), ckpt, '--out', out, '--num-workers', '0',
        '--no-progress', '--no-test', '--device', 'cpu'
    ])
    return dict(cfg=str(cfg_file), ckpt=out, tool=tools.load(
        'analysis_tools/ood_check.py'))


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
