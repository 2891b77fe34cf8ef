"""EfficientNet-DSP vs EfficientNetV2-S: size, FLOPs and CPU speed.

Both models are MMPretrain ``ImageClassifier`` s (backbone, global average
pooling, ``LinearClsHead`` on 1280 channels) and are measured in the same run,
interleaved repeat by repeat so that load changes on a shared machine hit
both alike. Every line prints the EfficientNetV2-S figure, the DSP figure and
the ratio DSP / EfficientNetV2-S.

- params: with a 1000-class head (paper table 2) and a ``--num-classes`` head.
- FLOPs: the count of mmengine's ``get_model_complexity_info`` on
  ``extract_feat``, as MMPretrain's ``tools/analysis_tools/get_flops.py``
  does (multiply-adds of conv / linear / matmul / norm layers; element-wise
  ops are not counted and are listed for the DSP model).
- latency: eval-mode forward of the classifier, batch 1 and 16, median.
- train step: forward, cross-entropy, backward and SGD step, batch 8, median.

Example (slow on a 2-core CPU)::

    nice -n 10 python tools/benchmarks/bench_models.py --repeats 3
    python tools/benchmarks/bench_models.py --img-size 64 --repeats 1  # smoke
"""
import argparse
import json
import os
import statistics
import time
from collections import Counter

import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers EfficientNetDSP and its bricks)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument(
        '--repeats', type=int, default=10, help='timed runs per measurement')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed runs before timing')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=4,
        help='classes of the second head for the parameter count')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch intra-op threads (default: the CPUs available)')
    parser.add_argument(
        '--dsp-kwargs',
        type=json.loads,
        default={},
        help='JSON of EfficientNetDSP arguments overriding its defaults, '
        'e.g. \'{"dy_stages": [2, 3]}\'')
    parser.add_argument(
        '--skip-train', action='store_true', help='skip the train step')
    return parser.parse_args()


def build_classifier(backbone, num_classes):
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=num_classes,
                in_channels=1280,
                loss=dict(type='CrossEntropyLoss'))))
    # No init_weights(): the PyTorch default init is enough for timing, and
    # mmengine would log every parameter's init.
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def flops_of(model, img_size):
    """FLOPs of ``extract_feat`` at one image, and the ops left uncounted.

    ``get_model_complexity_info`` returns ``FlopAnalyzer(model,
    inputs).total()`` as its 'flops'; the analyzer is used directly so the
    model is traced once and the skipped operators can be listed.
    """
    model.eval()
    forward = model.forward
    model.forward = model.extract_feat  # what get_flops.py measures
    try:
        analyzer = FlopAnalyzer(model,
                                (torch.randn(1, 3, img_size, img_size), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = analyzer.total()
        skipped = Counter(analyzer.unsupported_ops())
    finally:
        model.forward = forward
    return flops, skipped


def timed(fn, warmup):
    """A generator timing one more call of ``fn`` on every ``next()``."""
    for _ in range(warmup):
        fn()
    while True:
        start = time.perf_counter()
        fn()
        yield time.perf_counter() - start


def interleaved_medians(fns, warmup, repeats):
    gens = [timed(fn, warmup) for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for gen, bucket in zip(gens, times):
            bucket.append(next(gen))
    return [statistics.median(t) for t in times]


def inference_fn(model, batch, img_size):
    x = torch.randn(batch, 3, img_size, img_size)

    def run():
        model.eval()
        with torch.no_grad():
            model(x)

    return run


def train_fn(model, batch, img_size, num_classes):
    x = torch.randn(batch, 3, img_size, img_size)
    y = torch.randint(0, num_classes, (batch, ))
    optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run():
        model.train()
        optim.zero_grad()
        loss = F.cross_entropy(model.head(model.extract_feat(x)), y)
        loss.backward()
        optim.step()

    return run


def line(name, base, dsp, fmt):
    print(f'{name:<34}{fmt(base):>14}{fmt(dsp):>14}{dsp / base:>10.3f}')


def main():
    args = parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base_cfg = dict(type='EfficientNetV2', arch='s')
    dsp_cfg = dict(type='EfficientNetDSP', arch='s', **args.dsp_kwargs)

    print(f'img {args.img_size}px, torch threads {threads}, '
          f'repeats {args.repeats} (median), warm-up {args.warmup}, CPU')
    print(f'DSP backbone: {dsp_cfg}')
    print(f'{"":<34}{"EffNetV2-S":>14}{"DSP":>14}{"DSP/V2-S":>10}')

    models = {}
    for classes in (1000, args.num_classes):
        pair = [build_classifier(base_cfg, classes),
                build_classifier(dsp_cfg, classes)]
        line(f'params, {classes}-class head (M)',
             *[count_params(m) / 1e6 for m in pair], '{:.3f}'.format)
        models[classes] = pair
    base, dsp = models[args.num_classes]
    del models

    (base_flops, _), (dsp_flops, skipped) = (flops_of(base, args.img_size),
                                             flops_of(dsp, args.img_size))
    line(f'FLOPs @{args.img_size} (G)', base_flops / 1e9, dsp_flops / 1e9,
         '{:.3f}'.format)

    ms = '{:.1f}'.format
    for batch in (1, 16):
        t_base, t_dsp = interleaved_medians([
            inference_fn(base, batch, args.img_size),
            inference_fn(dsp, batch, args.img_size)
        ], args.warmup, args.repeats)
        line(f'inference, batch {batch} (ms)', t_base * 1e3, t_dsp * 1e3, ms)
    if not args.skip_train:
        t_base, t_dsp = interleaved_medians([
            train_fn(base, 8, args.img_size, args.num_classes),
            train_fn(dsp, 8, args.img_size, args.num_classes)
        ], args.warmup, args.repeats)
        line('train step, batch 8 (ms)', t_base * 1e3, t_dsp * 1e3, ms)

    print('ops the FLOP counter skips in DSP (count): ' +
          ', '.join(f'{op[len("aten::"):]} {n}'
                    for op, n in sorted(skipped.items())))


if __name__ == '__main__':
    main()
