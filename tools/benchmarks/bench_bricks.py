"""Forward+backward time of the EfficientNet-DSP bricks vs their plain
counterparts, at EfficientNetV2-S shapes.

Each pair (brick, baseline) is timed in the same run, interleaved round by
round so that machine load hits both alike; the table gives the median of
the rounds and the ratio brick / baseline. One thread by default, so the
numbers are comparable across runs on a shared machine.

Pairs, at (batch, 960, 14, 14) and (batch, 1536, 7, 7):

- SAR, ECA, CBAM vs SE (squeeze_channels = C // 24, SiLU, as EfficientNetV2
  places it after the depthwise conv of an expand-6 MBConv);
- ODConv2d 3x3 depthwise, kernel_num 4 and 1, vs nn.Conv2d 3x3 depthwise;
- DyODConv (ODConv2d k4 + BN + DyReLU) vs ConvModule (conv + BN + SiLU),
  the unit Dy-MBConv swaps, and DyReLU vs SiLU.

Examples:
    python tools/benchmarks/bench_bricks.py
    python tools/benchmarks/bench_bricks.py --rounds 11 --batch 8
    python tools/benchmarks/bench_bricks.py --device cuda --threads 0
"""
import argparse
import statistics
import time

import torch
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS
from torch import nn

import mmdsp  # noqa: F401  (registers the bricks)

SHAPES = ((960, 14), (1536, 7))


def pairs(channels):
    """(name, brick cfg or module factory, baseline name, factory)."""
    dw = dict(in_channels=channels, out_channels=channels, kernel_size=3,
              padding=1, groups=channels)
    se = dict(type='SE', in_channels=channels,
              squeeze_channels=channels // 24,
              act_cfg=(dict(type='SiLU'), dict(type='Sigmoid')))
    conv = ('Conv2d dw3x3', lambda: nn.Conv2d(bias=False, **dw))
    return [
        ('SAR', dict(type='SAR', in_channels=channels), 'SE', se),
        ('ECA', dict(type='ECA', in_channels=channels), 'SE', se),
        ('CBAM', dict(type='CBAM', in_channels=channels), 'SE', se),
        ('ODConv2d dw3x3 k4', dict(type='ODConv2d', kernel_num=4, **dw))
        + conv,
        ('ODConv2d dw3x3 k1', dict(type='ODConv2d', kernel_num=1, **dw))
        + conv,
        ('DyODConv dw3x3 k4', dict(type='DyODConv', kernel_num=4, **dw),
         'ConvModule dw+BN+SiLU', lambda: ConvModule(
             norm_cfg=dict(type='BN'), act_cfg=dict(type='SiLU'), **dw)),
        ('DyReLU', dict(type='DyReLU', channels=channels), 'SiLU',
         lambda: nn.SiLU()),
    ]


def build(spec):
    return spec() if callable(spec) else MODELS.build(spec)


def step_fn(module, x, grad, device):
    """One forward+backward; returns its wall time in seconds."""

    def step():
        if x.grad is not None:
            x.grad = None
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        module(x).backward(grad)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def bench_pair(brick, base, shape, device, warmup, rounds):
    x = torch.randn(shape, device=device, requires_grad=True)
    with torch.no_grad():
        grad = torch.randn_like(brick(x))
    steps = [step_fn(m, x, grad, device) for m in (brick, base)]
    for _ in range(warmup):
        for step in steps:
            step()
    times = ([], [])
    for r in range(rounds):
        # Alternate which one goes first, so neither always runs warm.
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            times[i].append(steps[i]())
    return [statistics.median(t) * 1e3 for t in times]


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads; 0 keeps the default')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    print(f'device={device} threads={torch.get_num_threads()} '
          f'batch={args.batch} rounds={args.rounds} (median ms, '
          'forward+backward, train mode)')
    header = (f'{"shape":>12} {"brick":<20} {"ms":>8} {"params":>8}  '
              f'{"baseline":<22} {"ms":>8} {"params":>8} {"ratio":>6}')
    print(header)
    print('-' * len(header))
    for channels, size in SHAPES:
        shape = (args.batch, channels, size, size)
        for name, spec, base_name, base_spec in pairs(channels):
            try:
                brick = build(spec).to(device).train()
            except Exception as e:  # report and go on with the others
                print(f'{channels}x{size}x{size:<4} {name:<20} not built: '
                      f'{type(e).__name__}: {e}')
                continue
            base = build(base_spec).to(device).train()
            t_brick, t_base = bench_pair(brick, base, shape, device,
                                         args.warmup, args.rounds)
            print(f'{f"{channels}x{size}x{size}":>12} {name:<20} '
                  f'{t_brick:8.2f} {n_params(brick):8d}  {base_name:<22} '
                  f'{t_base:8.2f} {n_params(base):8d} '
                  f'{t_brick / t_base:6.2f}')


if __name__ == '__main__':
    main()
