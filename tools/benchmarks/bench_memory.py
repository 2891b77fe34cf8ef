"""Activation memory of EfficientNet-DSP against EfficientNetV2: the bytes a
training forward saves for its backward, per image.

Both models are MMPretrain ``ImageClassifier`` s (backbone, global average
pooling, ``LinearClsHead`` on 1280 channels), built in the same run, in train
mode, under autocast. The count is the one of
``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd saves
during one forward, reduced to distinct storages (views and tensors saved
twice count once), without the model's own parameters and buffers (their
autocast copies do count: they live as long as the graph). It is divided by
the batch. The lines:

- ``saved``: all saved bytes, and the ratio DSP / EfficientNetV2;
- ``fp32``: the part of them held in float32 storages (under fp16 / bf16
  autocast, where only small per-channel gates and statistics should be);
- per stage (``--stages``): the bytes first saved while each backbone stage
  (``layers[i]``) ran, the head last;
- with ``--device cuda``, the peak allocated memory of one training step
  (forward, backward, SGD step) above the memory the model and its
  optimizer state hold, per image, and its ratio.

Each setting is printed for the CPU kernels, the device (portable) kernels
and the reference forwards of the bricks (``mmdsp.models.layers.use_impl``);
``--with-cp`` adds DSP with activation checkpointing of whole blocks
(``with_cp=True``), reported on its own line, never in the ratio above;
``--lean-base`` adds EfficientNetV2 with DSP's memory-efficient Swish, so
that the ratio to it is the cost of the DSP bricks alone.

Examples::

    python tools/benchmarks/bench_memory.py                   # S/224, B0/128
    python tools/benchmarks/bench_memory.py --models s:224 --stages
    python tools/benchmarks/bench_memory.py --device cuda --amp-dtype float16
"""
import argparse
import contextlib
import os.path as osp
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F

import mmdsp  # noqa: F401  (registers EfficientNetDSP and its bricks)
from mmdsp.models.layers import use_impl

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_models import build_classifier  # noqa: E402

MiB = 2.0**20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models',
        nargs='+',
        default=['s:224', 'b0:128'],
        help='ARCH:IMG_SIZE pairs (default: s:224 b0:128)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument(
        '--amp-dtype',
        choices=('bfloat16', 'float16', 'float32'),
        default=None,
        help='autocast dtype (default: bfloat16 on cpu, float16 on cuda); '
        'float32 turns autocast off')
    parser.add_argument(
        '--impls',
        nargs='+',
        default=['fast', 'device', 'reference'],
        choices=['fast', 'device', 'reference'],
        help="kernels of the bricks: 'fast' (chosen by device: the CPU "
        "kernels on a CPU), 'device' (the portable kernels GPUs get), "
        "'reference' (default: all three)")
    parser.add_argument(
        '--channels-last',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='channels_last models and inputs (default: on for cuda)')
    parser.add_argument('--stages', action='store_true',
                        help='print the saved bytes of every stage')
    parser.add_argument('--with-cp', action='store_true',
                        help='also measure DSP with with_cp=True')
    parser.add_argument('--lean-base', action='store_true',
                        help="also measure EfficientNetV2 with DSP's "
                        'MemoryEfficientSwish (the bricks\' own cost)')
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    if args.amp_dtype is None:
        args.amp_dtype = 'float16' if args.device == 'cuda' else 'bfloat16'
    if args.channels_last is None:
        args.channels_last = args.device == 'cuda'
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('bench_memory.py: --device cuda, but torch.cuda is '
                         'not available')
    for spec in args.models:
        arch, _, size = spec.partition(':')
        if not arch or not size.isdigit():
            parser.error(f'--models: {spec!r} is not ARCH:IMG_SIZE')
    return args


def model_pair(arch, with_cp=False, lean_base=False):
    """EfficientNetV2 and EfficientNet-DSP (the paper's bricks) of ``arch``;
    the DSP config is configs/_base_/models/efficientnet_dsp_s.py's.
    ``lean_base``: EfficientNetV2 with DSP's MemoryEfficientSwish too."""
    act = dict(type='MemoryEfficientSwish') if lean_base else {}
    base = build_classifier(
        dict(type='EfficientNetV2', arch=arch,
             **(dict(act_cfg=act) if act else {})), 4)
    dsp = build_classifier(
        dict(
            type='EfficientNetDSP',
            arch=arch,
            attention_cfg=dict(type='SAR'),
            dy_stages=(2, 3),
            dy_cfg=dict(kernel_num=4),
            dropblock_cfg=dict(start=0., final=0.1, block_size=7),
            act_cfg=dict(type='MemoryEfficientSwish'),
            with_cp=with_cp), 4)
    return base, dsp


class SavedBytes:
    """Counts the distinct storages autograd saves, by dtype and by the
    stage that was running when each was first saved.

    Args:
        model (nn.Module): Its parameters and buffers are not counted.
    """

    def __init__(self, model):
        self.skip = {
            t.untyped_storage().data_ptr()
            for t in list(model.parameters()) + list(model.buffers())
        }
        self.seen = set()
        self.by_dtype = defaultdict(int)
        self.by_stage = defaultdict(int)
        self.stage = 'stem'

    def pack(self, t):
        storage = t.untyped_storage()
        key = (storage.data_ptr(), t.device)
        if storage.data_ptr() not in self.skip and key not in self.seen \
                and storage.nbytes():
            self.seen.add(key)
            self.by_dtype[t.dtype] += storage.nbytes()
            self.by_stage[self.stage] += storage.nbytes()
        return t

    def total(self):
        return sum(self.by_dtype.values())

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def stage_markers(model, counter):
    """Forward pre-hooks naming the stage that runs (``layers[i]``, then the
    neck and head)."""
    handles = []
    for i, layer in enumerate(model.backbone.layers):
        handles.append(
            layer.register_forward_pre_hook(
                lambda m, a, i=i: setattr(counter, 'stage', f'layers[{i}]')))
    handles.append(
        model.neck.register_forward_pre_hook(
            lambda m, a: setattr(counter, 'stage', 'head')))
    return handles


def autocast(device, dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def saved_per_image(model, x, labels, device, dtype, stages=False):
    """The bytes one training forward (loss included) saves, per image:
    ``(total, float32 part, {stage: bytes})``."""
    counter = SavedBytes(model)
    handles = stage_markers(model, counter) if stages else []
    try:
        with counter.hooks(), autocast(device, dtype):
            feats = model.extract_feat(x)
            counter.stage = 'head'
            loss = F.cross_entropy(model.head(feats), labels)
    finally:
        for h in handles:
            h.remove()
    del loss
    n = x.size(0)
    return (counter.total() / n, counter.by_dtype[torch.float32] / n,
            {k: v / n for k, v in counter.by_stage.items()})


def peak_step_per_image(model, x, labels, device, dtype):
    """Peak CUDA memory of a training step above what the model and its
    optimizer state hold, per image (a step is taken first, so that the SGD
    momentum buffers exist)."""
    optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)

    def step():
        optim.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = F.cross_entropy(model(x, mode='tensor'), labels)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

    step()
    optim.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / x.size(0)


def prepare(model, device, channels_last):
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.amp_dtype)
    print(f'device {device}, autocast {args.amp_dtype}, batch {args.batch}, '
          f'channels_last {args.channels_last}, torch {torch.__version__}')
    print('MiB per image saved for backward (distinct storages, no '
          'parameters); ratio DSP / EfficientNetV2')
    for spec in args.models:
        arch, _, size = spec.partition(':')
        size = int(size)
        torch.manual_seed(0)
        base, dsp = (prepare(m, device, args.channels_last)
                     for m in model_pair(arch))
        x = torch.randn(args.batch, 3, size, size, device=device)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        labels = torch.arange(args.batch, device=device) % 4
        print(f'\n== {arch} at {size} px')
        for impl in args.impls:
            with use_impl(impl):
                b_tot, b_32, b_st = saved_per_image(base, x, labels, device,
                                                    dtype, args.stages)
                d_tot, d_32, d_st = saved_per_image(dsp, x, labels, device,
                                                    dtype, args.stages)
                print(f'[{impl:9s}] saved  V2 {b_tot / MiB:8.2f}  DSP '
                      f'{d_tot / MiB:8.2f}  ratio {d_tot / b_tot:.3f}')
                print(f'[{impl:9s}] fp32   V2 {b_32 / MiB:8.2f}  DSP '
                      f'{d_32 / MiB:8.2f}')
                if args.stages:
                    for stage in sorted(set(b_st) | set(d_st)):
                        print(f'    {stage:10s} V2 {b_st.get(stage, 0) / MiB:8.2f}'
                              f'  DSP {d_st.get(stage, 0) / MiB:8.2f}')
                if device.type == 'cuda':
                    b_pk = peak_step_per_image(base, x, labels, device, dtype)
                    d_pk = peak_step_per_image(dsp, x, labels, device, dtype)
                    print(f'[{impl:9s}] peak   V2 {b_pk / MiB:8.2f}  DSP '
                          f'{d_pk / MiB:8.2f}  ratio {d_pk / b_pk:.3f}')
                if args.lean_base:
                    torch.manual_seed(0)
                    lean, _ = model_pair(arch, lean_base=True)
                    lean = prepare(lean, device, args.channels_last)
                    l_tot, _, _ = saved_per_image(lean, x, labels, device,
                                                  dtype)
                    print(f'[{impl:9s}] V2 with the same Swish '
                          f'{l_tot / MiB:8.2f}  ratio DSP / it '
                          f'{d_tot / l_tot:.3f}')
                if args.with_cp:
                    torch.manual_seed(0)
                    _, cp = model_pair(arch, with_cp=True)
                    cp = prepare(cp, device, args.channels_last)
                    c_tot, _, _ = saved_per_image(cp, x, labels, device, dtype)
                    print(f'[{impl:9s}] with_cp DSP {c_tot / MiB:8.2f} '
                          f'(ratio to V2 without: {c_tot / b_tot:.3f})')
        del base, dsp


if __name__ == '__main__':
    main()
