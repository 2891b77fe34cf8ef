"""Export a trained classifier (backbone + neck + head) to ONNX.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--dynamic-batch] [--opset 18] [--softmax] [--shape H W]

The graph takes the *preprocessed* batch: float32 (N, 3, H, W) in RGB order,
normalised with the config's ``data_preprocessor`` mean and std (written to
``OUT.json`` together with the class names). It outputs the logits (or the
probabilities with ``--softmax``).

The model is first captured with ``torch.export`` and checked against eager
PyTorch (max abs difference < 1e-4, on two batch sizes with
``--dynamic-batch``), then converted with the torch.export-based ONNX
exporter, which needs the ``onnx`` and ``onnxscript`` packages. When they are
missing, the checked program is saved as ``OUT.pt2`` (``torch.export.load``)
and the exit code is 2. When ``onnxruntime`` is installed the ONNX file is
checked against PyTorch too.

Dynamic batch: in eager PyTorch, ODConv / Dy-ODConv (EfficientNet-DSP) fold
the batch into the groups of a single convolution (``groups = groups * N``),
which ONNX cannot express (``Conv.group`` is a static attribute). Under
``torch.export`` the bricks take their traceable paths instead
(``torch.compiler.is_compiling()``): ODConv applies its per-sample kernels tap
by tap (``_odconv_kernels.per_sample_forward``), with no batch size in any
attribute, so EfficientNet-DSP exports with ``--dynamic-batch`` like any
batch-independent model (ResNet, EfficientNetV2, ...), and one file serves
every batch size. A model that still cannot be exported dynamically gets a
message saying to use a fixed batch (``--batch N``).
"""
import argparse
import importlib.util
import json
import os.path as osp
import sys

import torch
import torch.nn as nn

from mmdsp.apis import init_classifier

TOLERANCE = 1e-4


class ClassifierForExport(nn.Module):
    """``model(x, mode='tensor')`` as a plain module returning one tensor.

    Args:
        model (nn.Module): An MMPretrain ``ImageClassifier`` (with a head).
        softmax (bool): Return probabilities instead of logits.
    """

    def __init__(self, model: nn.Module, softmax: bool = False):
        super().__init__()
        if not getattr(model, 'with_head', False):
            raise ValueError(f'{type(model).__name__} has no head: nothing '
                             'to export as a classifier.')
        self.model = model
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x, mode='tensor')
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        return logits.softmax(dim=1) if self.softmax else logits


def input_hw(cfg) -> tuple:
    """(H, W) of the test pipeline's output, default 224 x 224."""
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        return 224, 224
    for t in reversed(pipeline):
        size = None
        if t.get('type') == 'CenterCrop':
            size = t.get('crop_size')
        elif t.get('type') in ('Resize', 'RandomResizedCrop'):
            size = t.get('scale')
        if size is not None:
            if isinstance(size, int):
                return size, size
            return int(size[1]), int(size[0])  # mmcv sizes are (w, h)
    return 224, 224


def export_program(module: nn.Module, example: torch.Tensor,
                   dynamic_batch: bool):
    """torch.export the module, with a symbolic batch when asked."""
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = ({0: torch.export.Dim('batch', min=1, max=4096)}, )
    try:
        return torch.export.export(module, (example, ),
                                   dynamic_shapes=dynamic_shapes,
                                   strict=False)
    except Exception as e:
        if not dynamic_batch:
            raise
        raise RuntimeError(
            'This model cannot be exported with a dynamic batch (a layer '
            'depends on the batch size, e.g. a conv whose groups count the '
            f'samples): {type(e).__name__}: {str(e).splitlines()[0]}. '
            'Export without --dynamic-batch and choose --batch.') from e


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def check_parity(reference, candidate, inputs, what: str) -> float:
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            worst = max(worst, max_abs_diff(reference(x), candidate(x)))
    if not worst < TOLERANCE:
        raise RuntimeError(f'{what} differs from eager PyTorch by {worst:.3g}'
                           f' (max abs), above {TOLERANCE}.')
    return worst


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a classifier to ONNX (checked against PyTorch).')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--dynamic-batch',
                        action='store_true',
                        help='make the batch dimension dynamic')
    parser.add_argument('--batch',
                        type=int,
                        default=1,
                        help='batch size of a static export (default 1)')
    parser.add_argument('--opset',
                        type=int,
                        default=18,
                        help='ONNX opset version (default 18)')
    parser.add_argument('--softmax',
                        action='store_true',
                        help='output probabilities instead of logits')
    parser.add_argument('--shape',
                        type=int,
                        nargs=2,
                        metavar=('H', 'W'),
                        help='input size (default: from the test pipeline)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    model, cfg, classes = init_classifier(args.config,
                                          args.checkpoint,
                                          device='cpu')
    module = ClassifierForExport(model, args.softmax).eval()
    h, w = args.shape or input_hw(cfg)
    gen = torch.Generator().manual_seed(0)
    # Batch 2 for the example: torch.export specialises a size-1 dimension.
    batch = 2 if args.dynamic_batch else args.batch
    example = torch.randn(batch, 3, h, w, generator=gen)
    tests = [example] + ([torch.randn(3, 3, h, w, generator=gen)]
                         if args.dynamic_batch else [])

    program = export_program(module, example, args.dynamic_batch)
    diff = check_parity(module, program.module(), tests, 'torch.export')
    shapes = ', '.join(str(tuple(t.shape)) for t in tests)
    print(f'torch.export parity: max abs diff {diff:.3g} on inputs {shapes}')

    pre = cfg.model.get('data_preprocessor') or {}
    meta = dict(classes=list(classes),
                input_shape=['N' if args.dynamic_batch else batch, 3, h, w],
                input_color='RGB',
                mean=pre.get('mean'),
                std=pre.get('std'),
                output='probabilities' if args.softmax else 'logits')
    stem = osp.splitext(args.out)[0]
    with open(stem + '.json', 'w') as f:
        json.dump(meta, f, indent=2)

    missing = [
        m for m in ('onnx', 'onnxscript')
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        torch.export.save(program, stem + '.pt2')
        print(
            f'ONNX export needs the packages {missing} '
            f'(pip install onnx onnxscript). The checked torch.export '
            f'program is saved to {stem}.pt2 instead.',
            file=sys.stderr)
        return 2
    try:
        torch.onnx.export(program, (example, ),
                          args.out,
                          dynamo=True,
                          opset_version=args.opset,
                          input_names=['input'],
                          output_names=['probs' if args.softmax else 'logits'])
    except Exception as e:
        if not args.dynamic_batch:
            raise
        # E.g. a conv whose groups count the samples: ONNX Conv.group is a
        # static attribute (mmdsp's ODConv2d avoids this under export).
        raise RuntimeError(
            'ONNX conversion with a dynamic batch failed. Batch-dependent '
            'layers (a conv whose groups count the samples: ONNX Conv.group '
            'must be a constant) need a fixed batch: export without '
            '--dynamic-batch and choose --batch N. '
            f'Cause: {type(e).__name__}: {str(e).splitlines()[0][:300]}'
        ) from e
    print(f'ONNX model written to {args.out} (opset {args.opset})')
    if importlib.util.find_spec('onnxruntime') is not None:
        import onnxruntime as ort
        sess = ort.InferenceSession(args.out,
                                    providers=['CPUExecutionProvider'])
        name = sess.get_inputs()[0].name

        def run(x):
            return torch.from_numpy(sess.run(None, {name: x.numpy()})[0])

        diff = check_parity(module, run, tests, 'onnxruntime')
        print(f'onnxruntime parity: max abs diff {diff:.3g}')
    else:
        print('onnxruntime is not installed: ONNX output not checked.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
