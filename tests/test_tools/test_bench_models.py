"""tools/benchmarks/bench_models.py: arguments, the CUDA switch and the
per-brick attribution (tiny, nothing timed)."""
import pytest
import torch


@pytest.fixture
def bench(tools):
    tool = tools.load('benchmarks/bench_models.py')
    threads = torch.get_num_threads()
    yield tool
    torch.set_num_threads(threads)  # main() sets the thread count


def test_arguments(bench):
    args = bench.parse_args([])
    assert (args.device, args.channels_last, args.compile) == ('cpu', False,
                                                               False)
    assert args.breakdown and args.amp_dtype == 'float16'
    args = bench.parse_args(['--device', 'cuda', '--compile'])
    assert args.channels_last and args.compile  # channels_last on for cuda
    args = bench.parse_args(['--device', 'cuda', '--no-channels-last',
                             '--amp-dtype', 'bfloat16', '--no-breakdown'])
    assert not args.channels_last and not args.breakdown
    setting = bench.Setting(args, torch.device('cpu'))
    assert setting.amp_dtype is None  # autocast only on CUDA
    for bad in (['--repeats', '0'], ['--device', 'tpu'], ['--warmup', '-1']):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_cuda_without_gpu_is_a_clear_error(bench):
    with pytest.raises(SystemExit, match='not available'):
        bench.check_device(bench.parse_args(['--device', 'cuda']))


def test_channels_last_skips_5d_weights(bench):
    from mmdsp.models.layers import DyODConv
    unit = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3),
                               DyODConv(8, 8, 3, groups=8))
    bench.to_channels_last(unit)
    assert unit[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert unit[1].conv.weight.dim() == 5
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    assert unit(x).shape == (2, 8, 7, 7)


def test_breakdown_attributes_backward_to_bricks(bench):
    from mmdsp.models.layers import SAR, DyReLU
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1), SAR(16, groups=4),
                              DyReLU(16))
    x = torch.randn(2, 8, 7, 7)

    def step():
        net.zero_grad()
        net(x).sum().backward()

    result = bench.breakdown(net, step, 2, torch.device('cpu'))
    assert result['SAR'][0] > 0 and result['SAR'][1] > 0
    assert result['DyReLU'][0] > 0 and result['DyReLU'][1] > 0
    assert result['ODConv2d'] == (0, 0) and result['rest'] >= 0
    assert sum(f + b for f, b in (result[k] for k in bench.BRICKS)) \
        <= result['total'] * 1.01
    from mmdsp.models.layers import _dyrelu_kernels
    assert SAR.forward.__name__ == 'forward' and not hasattr(
        SAR.forward, '__wrapped__')  # restored
    assert not hasattr(_dyrelu_kernels.bn_dyrelu_eval, '__wrapped__')


def test_breakdown_counts_the_folded_dyrelu(bench):
    """In eval without autograd the Dy-ODConv unit folds BN into DyReLU; the
    breakdown still counts that kernel as DyReLU."""
    from mmdsp.models.layers import DyODConv
    unit = DyODConv(8, 8, 3, groups=8).eval()
    x = torch.randn(2, 8, 9, 9)

    def run():
        with torch.no_grad():
            unit(x)

    result = bench.breakdown(unit, run, 2, torch.device('cpu'))
    assert result['DyReLU'][0] > 0 and result['ODConv2d'][0] > 0


def test_smoke_run_prints_ratios_and_breakdown(bench, capsys):
    bench.main(['--arch', 'b0', '--img-size', '32', '--repeats', '1',
                '--warmup', '0', '--threads', '1', '--profile-steps', '1'])
    out = capsys.readouterr().out
    for text in ('FLOPs @32', 'inference, batch 16 (ms)',
                 'train step, batch 8 (ms)', 'per-brick breakdown',
                 'ODConv2d', 'DyDropBlock', 'rest'):
        assert text in out


def test_stage_table_covers_every_stage(bench, capsys):
    models = [bench.build_classifier(dict(type=t, arch='b0'), 4)
              for t in ('EfficientNetV2', 'EfficientNetDSP')]
    args = bench.parse_args(['--stages'])
    setting = bench.Setting(args, torch.device('cpu'))
    timer = bench.Timer(torch.device('cpu'))
    medians = bench.stage_medians(models, 2, 32, setting, timer, 0, 1)
    stages = len(models[0].backbone.layers)
    assert [len(m) for m in medians] == [stages, stages]
    assert all(t > 0 for m in medians for t in m)
    kinds = bench.stage_kinds(models[1])
    assert kinds[2] == 'DyMBConv' and kinds[-2] == 'MBConvDSP'
    bench.print_stages(models, medians, 2)
    out = capsys.readouterr().out
    assert 'EdgeResidual' in out and 'DyMBConv' in out and 'sum' in out


class FakeLibc:
    def __init__(self, ok=1):
        self.calls, self.ok = [], ok

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.ok


def test_keep_freed_memory_sets_both_mallopt_knobs(bench):
    libc = FakeLibc()
    assert bench.keep_freed_memory(libc)
    assert libc.calls == [(bench.M_MMAP_MAX, 0),
                          (bench.M_TRIM_THRESHOLD, 2**31 - 1)]
    assert not bench.keep_freed_memory(FakeLibc(ok=0))
    assert not bench.keep_freed_memory(object())  # no mallopt: not glibc
    assert bench.parse_args(['--malloc', 'keep']).malloc == 'keep'
    with pytest.raises(SystemExit):
        bench.parse_args(['--malloc', 'jemalloc'])


def test_compiled_functions(bench):
    """The --compile lines' callables run under torch.compile (here the
    aot_eager backend, which builds the graphs without generating code)."""
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, stem_channels=8,
                      base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))
    args = bench.parse_args(['--compile', '--compile-backend', 'aot_eager'])
    setting = bench.Setting(args, torch.device('cpu'))
    setting.compile_kwargs = dict(backend=args.compile_backend)
    torch._dynamo.reset()
    bench.inference_fn(model, 2, 32, setting, compiled=True)()
    before = [p.detach().clone() for p in model.parameters()]
    bench.train_fn(model, 2, 32, 3, setting, compiled=True)()
    assert any(not torch.equal(a, p) for a, p in zip(before,
                                                     model.parameters()))
