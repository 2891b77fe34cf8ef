import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HAS_ONNX = all(
    importlib.util.find_spec(m) is not None for m in ('onnx', 'onnxscript'))
HAS_ORT = importlib.util.find_spec('onnxruntime') is not None

CONFIG = """
custom_imports = dict(imports=['mmdsp'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=64))
data_preprocessor = dict(num_classes=4, mean=[128.] * 3, std=[64.] * 3,
                         to_rgb=True)
test_dataloader = dict(dataset=dict(
    type='CustomDataset', data_root='unused',
    metainfo=dict(classes=['Benign', 'Early', 'Pre', 'Pro']),
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='Resize', scale=(40, 32)),
              dict(type='PackInputs')]))
"""

# EfficientNet-DSP (arch b0: Dy-ODConv, SAR, DyDropBlock) at 64 px.
DSP_CONFIG = CONFIG.replace(
    "backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8)",
    "backbone=dict(type='EfficientNetDSP', arch='b0')").replace(
        'in_channels=64', 'in_channels=1280').replace(
            'scale=(40, 32)', 'scale=(64, 64)')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('export')
    cfg_file = root / 'tiny.py'
    cfg_file.write_text(CONFIG)
    cfg = Config.fromfile(str(cfg_file))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict()}, root / 'tiny.pth')
    return root, str(cfg_file), str(root / 'tiny.pth')


def _eager(cfg_file, ckpt):
    from mmdsp.apis import init_classifier
    return init_classifier(cfg_file, ckpt, 'cpu')[0]


def _check_outputs(root, cfg_file, ckpt, dynamic, softmax):
    model = _eager(cfg_file, ckpt)
    meta = json.loads((root / 'm.json').read_text())
    assert meta['classes'] == ['Benign', 'Early', 'Pre', 'Pro']
    assert meta['input_shape'][1:] == [3, 32, 40]  # (w, h) = (40, 32)
    assert meta['mean'] == [128.] * 3
    for n in ([1, 5] if dynamic else [1]):
        x = torch.randn(n, 3, 32, 40)
        with torch.no_grad():
            ref = model(x, mode='tensor')
            ref = ref.softmax(1) if softmax else ref
        if HAS_ONNX and HAS_ORT:
            import onnxruntime as ort
            sess = ort.InferenceSession(str(root / 'm.onnx'),
                                        providers=['CPUExecutionProvider'])
            out = torch.from_numpy(sess.run(None, {'input': x.numpy()})[0])
        else:
            program = torch.export.load(str(root / 'm.pt2'))
            out = program.module()(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize('dynamic,softmax', [(False, False), (True, True)])
def test_export_parity(files, dynamic, softmax, capsys, tools):
    root, cfg_file, ckpt = files
    args = [cfg_file, ckpt, str(root / 'm.onnx')]
    args += ['--dynamic-batch'] if dynamic else []
    args += ['--softmax'] if softmax else []
    rc = tools.load('deployment/export_onnx.py').main(args)
    printed = capsys.readouterr()
    assert 'torch.export parity: max abs diff' in printed.out
    if HAS_ONNX:
        assert rc == 0 and osp.isfile(root / 'm.onnx')
    else:
        assert rc == 2 and 'pip install onnx onnxscript' in printed.err
        assert osp.isfile(root / 'm.pt2')
    _check_outputs(root, cfg_file, ckpt, dynamic, softmax)


def test_parity_check_catches_a_difference(tools):
    tool = tools.load('deployment/export_onnx.py')
    x = [torch.randn(2, 3)]
    assert tool.check_parity(lambda t: t, lambda t: t + 5e-5, x, 'a') < 1e-4
    with pytest.raises(RuntimeError, match='differs'):
        tool.check_parity(lambda t: t, lambda t: t + 1e-3, x, 'a')


def test_input_hw_from_pipeline(tools):
    tool = tools.load('deployment/export_onnx.py')
    cfg = Config(
        dict(test_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=256),
            dict(type='CenterCrop', crop_size=(48, 64)),
            dict(type='PackInputs')
        ]))))
    assert tool.input_hw(cfg) == (64, 48)
    assert tool.input_hw(Config(dict())) == (224, 224)


@pytest.mark.skipif(not (HAS_ONNX and HAS_ORT),
                    reason='needs onnx, onnxscript and onnxruntime')
def test_dsp_dynamic_batch_onnx(tmp_path, capsys, tools):
    """EfficientNet-DSP exports with a dynamic batch (ODConv's per-sample
    kernels are applied tap by tap under torch.export, with no batch in
    the conv groups): ONE .onnx file matches eager PyTorch at batch 1 and
    5 (and 2, 3 inside the tool)."""
    assert 'EfficientNetDSP' in DSP_CONFIG and 'scale=(64, 64)' in DSP_CONFIG
    cfg_file = tmp_path / 'dsp.py'
    cfg_file.write_text(DSP_CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    with torch.no_grad():  # non-trivial attentions and norms
        for name, p in model.named_parameters():
            if 'backbone' in name and p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'dsp.pth')
    out = tmp_path / 'dsp.onnx'
    rc = tools.load('deployment/export_onnx.py').main(
        [str(cfg_file), str(tmp_path / 'dsp.pth'), str(out),
         '--dynamic-batch'])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert 'onnxruntime parity' in printed
    import onnx
    import onnxruntime as ort
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param
    eager = _eager(str(cfg_file), str(tmp_path / 'dsp.pth'))
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    for n in (1, 5):
        x = torch.randn(n, 3, 64, 64)
        with torch.no_grad():
            ref = eager(x, mode='tensor')
        got = torch.from_numpy(sess.run(None, {'input': x.numpy()})[0])
        assert got.shape == ref.shape == (n, 4)
        diff = (got - ref).abs().max().item()
        print(f'EfficientNet-DSP b0 64px ONNX dynamic batch {n}: '
              f'max abs diff {diff:.3g}')
        assert diff < 1e-4
