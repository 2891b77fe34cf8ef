"""EfficientNet-DSP vs EfficientNetV2-S: size, FLOPs, speed, and where the
time goes.

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
- per-brick breakdown (``torch.profiler``): the share of DSP's inference
  forward (batch 1 and 16) and train step (batch 8) spent in SAR, ODConv2d,
  DyReLU, DyDropBlock and the rest. A brick's forward is the profiler range
  of its ``forward`` (the Dy-ODConv unit's folded BN + DyReLU inference
  kernel counts as DyReLU); its backward is every autograd node whose
  sequence number was created inside that range. Profiling slows small
  ops down, so the shares are a guide, the timed lines above are the speed.
- ``--stages``: eval forward time of each backbone stage (``layers[i]``)
  of both models side by side, batch 1 and 16: the stages DSP changes (Dy-MBConv
  for Fused-MBConv, SAR for SE) against the ones it shares.
- ``--malloc keep``: glibc's allocator keeps freed memory (no ``mmap``
  blocks, no trimming), which is what ``MALLOC_MMAP_MAX_=0
  MALLOC_TRIM_THRESHOLD_=<large>`` in the environment does for any
  command. By default glibc serves blocks above its mmap threshold (at most
  32 MiB) with fresh pages, which page-fault on their first write on every
  call: at batch 16 and 224 px that is most of a Dy-MBConv stage's time.
- ``--compile``: the same latency / train lines for both models under
  ``torch.compile`` (inductor), compile time excluded (warm-up).
- ``--device cuda``: autocast (``--amp-dtype``, float16 by default, with a
  gradient scaler in the train step), channels_last, timed with CUDA events.

Examples (slow on a 2-core CPU)::

    nice -n 10 python tools/benchmarks/bench_models.py --threads 2 --repeats 10
    python tools/benchmarks/bench_models.py --threads 2 --compile --img-size 128
    python tools/benchmarks/bench_models.py --device cuda --compile
    python tools/benchmarks/bench_models.py --img-size 64 --repeats 1  # smoke
"""
import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time
from collections import Counter, defaultdict

import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmpretrain.registry import MODELS

import mmdsp  # noqa: F401  (registers EfficientNetDSP and its bricks)

# The DSP bricks of the breakdown, by class name, in print order.
BRICKS = ('SAR', 'ODConv2d', 'DyReLU', 'DyDropBlock')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument(
        '--arch', default='s', help="arch of both backbones (default 's')")
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
    parser.add_argument(
        '--device',
        choices=('cpu', 'cuda'),
        default='cpu',
        help='cuda: autocast, channels_last, CUDA-event timing')
    parser.add_argument(
        '--amp-dtype',
        choices=('float16', 'bfloat16'),
        default='float16',
        help='autocast dtype with --device cuda (default float16)')
    parser.add_argument(
        '--channels-last',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='run both models in channels_last (default: on for cuda, off '
        'for cpu)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also time both models under torch.compile')
    parser.add_argument(
        '--compile-mode',
        default=None,
        help="torch.compile mode, e.g. 'max-autotune' (default: inductor's "
        'default)')
    parser.add_argument(
        '--compile-backend',
        default='inductor',
        help="torch.compile backend (default 'inductor'; 'aot_eager' "
        'checks the graphs without generating code)')
    parser.add_argument(
        '--breakdown',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='print the per-brick profiler breakdown of DSP (default on)')
    parser.add_argument(
        '--malloc',
        choices=('default', 'keep'),
        default='default',
        help="'keep': glibc keeps freed memory for reuse (mallopt: no mmap, "
        'no trim), see the module docstring')
    parser.add_argument(
        '--stages',
        action='store_true',
        help='print the per-stage forward times of both models')
    parser.add_argument(
        '--profile-steps',
        type=int,
        default=3,
        help='profiled calls per breakdown (default 3)')
    args = parser.parse_args(argv)
    if args.channels_last is None:
        args.channels_last = args.device == 'cuda'
    for name in ('repeats', 'profile_steps', 'img_size'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    return args


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory(libc=None):
    """Make glibc's malloc reuse freed memory instead of returning it to
    the system: no block is served by ``mmap`` and the heap is never
    trimmed, so a large temporary made on every call reuses pages that are
    already mapped instead of page-faulting fresh ones.

    Args:
        libc: The C library to set (a ``ctypes.CDLL``); default glibc.

    Returns:
        bool: Whether both settings took (False where there is no glibc).
    """
    if libc is None:
        import ctypes
        import ctypes.util
        try:
            libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        except OSError:
            return False
    if not hasattr(libc, 'mallopt'):
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def malloc_setting(args):
    """Apply ``--malloc`` and describe the allocator for the header."""
    env = ', '.join(f'{k}={os.environ[k]}'
                    for k in ('MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_')
                    if k in os.environ)
    if args.malloc == 'keep':
        if not keep_freed_memory():
            raise SystemExit('bench_models.py: --malloc keep needs glibc '
                             '(mallopt not found or refused)')
        return 'malloc keeps freed memory (mallopt)'
    return f'malloc default{f" ({env})" if env else ""}'


def check_device(args):
    """The torch device of ``args.device``; a clear error without CUDA."""
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('bench_models.py: --device cuda, but torch.cuda is '
                         'not available (no GPU, or a CPU-only torch build)')
    return torch.device(args.device)


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


def to_channels_last(model):
    """Every 4-D parameter / buffer in channels_last (``Module.to`` refuses
    ODConv2d's 5-D candidate weight, which stays as it is)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
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


class Timer:
    """Seconds of one call: ``perf_counter`` on CPU, CUDA events on GPU."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'

    def __call__(self, fn):
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def timed(fn, warmup, timer):
    """A generator timing one more call of ``fn`` on every ``next()``."""
    for _ in range(warmup):
        fn()
    while True:
        yield timer(fn)


def interleaved_medians(fns, warmup, repeats, timer):
    gens = [timed(fn, warmup, timer) for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for gen, bucket in zip(gens, times):
            bucket.append(next(gen))
    return [statistics.median(t) for t in times]


class Setting:
    """How the models run: device, memory format, autocast."""

    def __init__(self, args, device):
        self.device = device
        self.channels_last = args.channels_last
        self.amp_dtype = (getattr(torch, args.amp_dtype)
                          if device.type == 'cuda' else None)

    def input(self, *shape):
        x = torch.randn(*shape, device=self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        return torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.bfloat16,
            enabled=self.amp_dtype is not None)

    def describe(self):
        amp = f'autocast {self.amp_dtype}' if self.amp_dtype else 'fp32'
        fmt = 'channels_last' if self.channels_last else 'NCHW'
        return f'{self.device.type.upper()}, {amp}, {fmt}'


def inference_fn(model, batch, img_size, setting, compiled=False):
    x = setting.input(batch, 3, img_size, img_size)
    model.eval()
    forward = model
    if compiled:
        forward = torch.compile(model, **setting.compile_kwargs)

    def run():
        with torch.no_grad(), setting.autocast():
            forward(x)

    return run


def train_fn(model, batch, img_size, num_classes, setting, compiled=False):
    x = setting.input(batch, 3, img_size, img_size)
    y = torch.randint(0, num_classes, (batch, ), device=setting.device)
    optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(
        'cuda', enabled=setting.amp_dtype == torch.float16)

    def loss_of(x, y):
        return F.cross_entropy(model.head(model.extract_feat(x)), y)

    if compiled:
        loss_of = torch.compile(loss_of, **setting.compile_kwargs)

    def run():
        model.train()
        optim.zero_grad()
        with setting.autocast():
            loss = loss_of(x, y)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

    return run


# ----------------------------------------------------------------------
# per-stage times
# ----------------------------------------------------------------------
def stage_kinds(model):
    """The class name of each stage's first block (the stage's own for the
    stem and the final conv)."""
    return [type(s[0] if isinstance(s, torch.nn.Sequential) else s).__name__
            for s in model.backbone.layers]


def stage_fn(model, batch, img_size, setting, timer):
    """A call running the backbone stage by stage (what
    ``EfficientNetV2.forward`` does) that returns each stage's seconds."""
    x = setting.input(batch, 3, img_size, img_size)
    model.eval()

    def run():
        times, y = [], x
        with torch.no_grad(), setting.autocast():
            for stage in model.backbone.layers:
                def call(stage=stage, inp=y):
                    nonlocal y
                    y = stage(inp)
                times.append(timer(call))
        return times

    return run


def stage_medians(models, batch, img_size, setting, timer, warmup, repeats):
    """Per-stage median seconds of each model, interleaved repeat by
    repeat like the other lines."""
    fns = [stage_fn(m, batch, img_size, setting, timer) for m in models]
    for _ in range(warmup):
        for fn in fns:
            fn()
    runs = [[] for _ in models]
    for _ in range(repeats):
        for fn, bucket in zip(fns, runs):
            bucket.append(fn())
    return [[statistics.median(r[i] for r in bucket)
             for i in range(len(bucket[0]))] for bucket in runs]


def print_stages(models, medians, batch):
    print(f'per-stage eval forward, batch {batch} (ms, median):')
    print(f'  {"stage":<7}{"EffNetV2 block":<22}{"ms":>9}  '
          f'{"DSP block":<22}{"ms":>9}{"DSP-V2":>10}')
    kinds = [stage_kinds(m) for m in models]
    for i, (kb, kd, tb, td) in enumerate(zip(*kinds, *medians)):
        print(f'  {i:<7}{kb:<22}{tb * 1e3:9.1f}  {kd:<22}{td * 1e3:9.1f}'
              f'{(td - tb) * 1e3:+10.1f}')
    tb, td = (sum(m) for m in medians)
    print(f'  {"sum":<29}{tb * 1e3:9.1f}  {"":<22}{td * 1e3:9.1f}'
          f'{(td - tb) * 1e3:+10.1f}')


# ----------------------------------------------------------------------
# per-brick breakdown
# ----------------------------------------------------------------------
@contextlib.contextmanager
def brick_ranges():
    """Open a profiler range ``mmdsp::<class>`` around every forward of the
    DSP bricks (their classes' ``forward`` wrapped for the block, no module
    hooks, which would turn off the folded BN + DyReLU inference path of
    the Dy-ODConv unit); that fused kernel counts as DyReLU."""
    from mmdsp.models import layers
    from mmdsp.models.layers import _dyrelu_kernels

    def ranged(fn, name):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with torch.autograd.profiler.record_function('mmdsp::' + name):
                return fn(*args, **kwargs)
        return wrapper

    patched = [(getattr(layers, name), 'forward', name) for name in BRICKS]
    if hasattr(_dyrelu_kernels, 'bn_dyrelu_eval'):  # (older code lacks it)
        patched.append((_dyrelu_kernels, 'bn_dyrelu_eval', 'DyReLU'))
    originals = [(owner, attr, getattr(owner, attr))
                 for owner, attr, _ in patched]
    try:
        for (owner, attr, name), (_, _, fn) in zip(patched, originals):
            setattr(owner, attr, ranged(fn, name))
        yield
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)


def _descendants(event):
    stack = list(event.cpu_children)
    while stack:
        e = stack.pop()
        yield e
        stack.extend(e.cpu_children)


def attribute_events(events, device_time=False):
    """Time per brick from profiler events, forward and backward, in us.

    Forward: the ``mmdsp::<brick>`` ranges. Backward: each autograd node
    (``autograd::engine::evaluate_function: ...``) goes to the brick in
    whose forward range an op with the node's sequence number ran.

    Returns:
        tuple[dict, dict]: forward and backward microseconds per brick.
    """
    def cost(e):
        return e.device_time_total if device_time else e.cpu_time_total

    fwd, bwd = defaultdict(float), defaultdict(float)
    owner = {}
    for e in events:
        if not e.name.startswith('mmdsp::'):
            continue
        brick = e.name[len('mmdsp::'):]
        fwd[brick] += cost(e)
        for child in _descendants(e):
            if child.sequence_nr >= 0:
                owner.setdefault(child.sequence_nr, brick)
    for e in events:
        if e.name.startswith('autograd::engine::evaluate_function') \
                and e.sequence_nr in owner:
            bwd[owner[e.sequence_nr]] += cost(e)
    return fwd, bwd


def breakdown(model, fn, steps, device):
    """Profile ``steps`` calls of ``fn`` (one untimed call first) and split
    the time per call into the DSP bricks and the rest.

    Returns:
        dict: ``{'total': ms, brick: (fwd ms, bwd ms), 'rest': ms}``.
    """
    from torch.profiler import ProfilerActivity, profile
    fn()
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with brick_ranges(), profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        wall = (time.perf_counter() - start) / steps
    fwd, bwd = attribute_events(
        prof.events(), device_time=device.type == 'cuda')
    result = {'total': wall * 1e3}
    spent = 0.0
    for brick in BRICKS:
        f, b = fwd.get(brick, 0.) / 1e3 / steps, bwd.get(brick, 0.) / 1e3 / steps
        result[brick] = (f, b)
        spent += f + b
    if device.type == 'cuda':
        # Device times of the bricks against the wall time of the call.
        result['note'] = 'brick times are CUDA kernel times'
    result['rest'] = max(result['total'] - spent, 0.)
    return result


def print_breakdown(title, result, train):
    total = result['total']
    cols = 'fwd ms   bwd ms' if train else 'fwd ms'
    print(f'  {title}: {total:.1f} ms per call under the profiler '
          f'({cols}, % of the call)')
    for brick in BRICKS:
        f, b = result[brick]
        times = f'{f:8.1f} {b:8.1f}' if train else f'{f:8.1f}'
        print(f'    {brick:<12}{times}  {100 * (f + b) / total:5.1f} %')
    rest = result['rest']
    pad = ' ' * 9 if train else ''
    print(f'    {"rest":<12}{rest:8.1f}{pad}  {100 * rest / total:5.1f} %')


def line(name, base, dsp, fmt):
    print(f'{name:<34}{fmt(base):>14}{fmt(dsp):>14}{dsp / base:>10.3f}')


def main(argv=None):
    args = parse_args(argv)
    device = check_device(args)
    malloc = malloc_setting(args)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    setting = Setting(args, device)
    setting.compile_kwargs = dict(backend=args.compile_backend)
    if args.compile_mode:
        setting.compile_kwargs['mode'] = args.compile_mode
    timer = Timer(device)
    base_cfg = dict(type='EfficientNetV2', arch=args.arch)
    dsp_cfg = dict(type='EfficientNetDSP', arch=args.arch, **args.dsp_kwargs)

    compiled = (f', compiled lines: torch.compile({setting.compile_kwargs})'
                if args.compile else '')
    print(f'img {args.img_size}px, torch threads {threads}, '
          f'repeats {args.repeats} (median), warm-up {args.warmup}, '
          f'{setting.describe()}, {malloc}, torch {torch.__version__}'
          f'{compiled}')
    print(f'DSP backbone: {dsp_cfg}')
    print(f'{"":<34}{f"EffNetV2-{args.arch.upper()}":>14}{"DSP":>14}'
          f'{"DSP/V2":>10}')

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

    for m in (base, dsp):
        m.to(device)
        if setting.channels_last:
            to_channels_last(m)

    ms = '{:.1f}'.format
    variants = [('', False)] + ([('compiled ', True)] if args.compile else [])
    for prefix, compiled in variants:
        for batch in (1, 16):
            t_base, t_dsp = interleaved_medians([
                inference_fn(base, batch, args.img_size, setting, compiled),
                inference_fn(dsp, batch, args.img_size, setting, compiled)
            ], args.warmup + compiled, args.repeats, timer)
            line(f'{prefix}inference, batch {batch} (ms)', t_base * 1e3,
                 t_dsp * 1e3, ms)
        if not args.skip_train:
            t_base, t_dsp = interleaved_medians([
                train_fn(base, 8, args.img_size, args.num_classes, setting,
                         compiled),
                train_fn(dsp, 8, args.img_size, args.num_classes, setting,
                         compiled)
            ], args.warmup + 2 * compiled, args.repeats, timer)
            line(f'{prefix}train step, batch 8 (ms)', t_base * 1e3,
                 t_dsp * 1e3, ms)
        sys.stdout.flush()

    if args.stages:
        for batch in (1, 16):
            print_stages((base, dsp),
                         stage_medians((base, dsp), batch, args.img_size,
                                       setting, timer, args.warmup,
                                       args.repeats), batch)
    print('ops the FLOP counter skips in DSP (count): ' +
          ', '.join(f'{op[len("aten::"):]} {n}'
                    for op, n in sorted(skipped.items())))
    if not args.breakdown:
        return
    print('per-brick breakdown of DSP (torch.profiler, eager):')
    for batch in (1, 16):
        print_breakdown(
            f'inference, batch {batch}',
            breakdown(dsp,
                      inference_fn(dsp, batch, args.img_size, setting),
                      args.profile_steps, device), train=False)
    if not args.skip_train:
        print_breakdown(
            'train step, batch 8',
            breakdown(dsp,
                      train_fn(dsp, 8, args.img_size, args.num_classes,
                               setting), args.profile_steps, device),
            train=True)


if __name__ == '__main__':
    main()
