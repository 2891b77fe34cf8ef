from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.engine.hooks import ODConvTemperatureHook
from mmdsp.models.layers import DyODConv, ODConv2d


def make_model():
    return nn.Sequential(
        ODConv2d(4, 4, 3, padding=1), nn.ReLU(),
        DyODConv(4, 4, 3, groups=4), ODConv2d(4, 2, 1))


def make_runner(model, epoch=0, it=0, iters_per_epoch=5):
    return SimpleNamespace(
        model=model,
        epoch=epoch,
        iter=it,
        train_dataloader=[None] * iters_per_epoch,
        message_hub=MessageHub.get_instance('test_odconv_temperature_hook'))


def temperatures(model):
    return [
        float(m.temperature) for m in model.modules()
        if isinstance(m, ODConv2d)
    ]


def test_epoch_schedule():
    hook = ODConvTemperatureHook(start=30.0, end=1.0, warmup_epochs=10)
    model = make_model()
    expected = {0: 30.0, 1: 27.1, 5: 15.5, 9: 3.9, 10: 1.0, 25: 1.0}
    for epoch, value in expected.items():
        runner = make_runner(model, epoch=epoch)
        hook.before_train_epoch(runner)
        assert temperatures(model) == pytest.approx([value] * 3)
        logged = runner.message_hub.get_scalar('train/odconv_temperature')
        assert logged.current() == pytest.approx(value)
    # by_epoch=True ignores iterations.
    hook.before_train_iter(make_runner(model, epoch=0, it=0), 0)
    assert temperatures(model) == pytest.approx([1.0] * 3)


def test_iter_schedule():
    hook = ODConvTemperatureHook(
        start=11.0, end=1.0, warmup_epochs=2, by_epoch=False)
    model = make_model()
    hook.before_train_epoch(make_runner(model, epoch=0))
    assert temperatures(model) == pytest.approx([1.0] * 3)  # untouched
    # 5 iterations per epoch: iteration 3 is epoch 0.6 of 2.
    for it, value in [(0, 11.0), (3, 8.0), (5, 6.0), (10, 1.0), (40, 1.0)]:
        hook.before_train_iter(make_runner(model, it=it), it)
        assert temperatures(model) == pytest.approx([value] * 3)


def test_zero_warmup_and_arguments():
    hook = ODConvTemperatureHook(start=30, end=2, warmup_epochs=0)
    model = make_model()
    hook.before_train_epoch(make_runner(model))
    assert temperatures(model) == pytest.approx([2.0] * 3)
    with pytest.raises(ValueError, match='warmup_epochs'):
        ODConvTemperatureHook(warmup_epochs=-1)
    with pytest.raises(ValueError, match='start and end'):
        ODConvTemperatureHook(start=0)


def test_model_without_dynamic_conv_warns_once(warnings_log):
    hook = ODConvTemperatureHook(by_epoch=False)
    model = nn.Conv2d(2, 2, 1)
    runner = make_runner(model)
    runner.message_hub = MessageHub.get_instance('odconv_hook_no_conv')
    for it in range(3):
        runner.iter = it
        hook.before_train_iter(runner, it)
    assert len(warnings_log) == 1
    assert 'ODConvTemperatureHook' in warnings_log[0]
    assert 'update_temperature' in warnings_log[0]
    # Nothing was annealed, so nothing is logged as if it had been.
    assert 'train/odconv_temperature' not in runner.message_hub.log_scalars


def test_unwraps_ddp(tmp_path):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        model = make_model()
        wrapped = MMDistributedDataParallel(module=model)
        hook = ODConvTemperatureHook(start=9, end=1, warmup_epochs=4)
        hook.before_train_epoch(make_runner(wrapped, epoch=2))
        assert temperatures(model) == pytest.approx([5.0] * 3)
    finally:
        dist.destroy_process_group()


def test_registered_and_runs_in_runner(toy_runner, monkeypatch):
    import mmengine.runner.runner as runner_module
    from mmengine.model import BaseModel
    from mmpretrain.registry import HOOKS

    # Environment logging probes compilers in subprocesses (~4 s here) and
    # has nothing to do with the hook.
    monkeypatch.setattr(runner_module, 'collect_env', dict)

    assert HOOKS.get('ODConvTemperatureHook') is ODConvTemperatureHook
    seen = []

    class Tiny(BaseModel):

        def __init__(self):
            super().__init__()
            self.conv = ODConv2d(2, 2, 3, padding=1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            seen.append(float(self.conv.temperature))
            out = self.conv(inputs)
            return dict(loss=out.square().mean())

    data = [dict(inputs=torch.randn(2, 4, 4))] * 2
    runner = toy_runner(
        Tiny(), data, 1, dict(by_epoch=True, max_epochs=3), [
            dict(type='ODConvTemperatureHook', start=5.0, end=1.0,
                 warmup_epochs=2)
        ])
    runner.train()
    assert seen == pytest.approx([5.0, 5.0, 3.0, 3.0, 1.0, 1.0])


def test_each_temperature_is_set_once_per_step(monkeypatch):
    model = make_model()  # the DyODConv holds the third ODConv2d
    convs = [m for m in model.modules() if isinstance(m, ODConv2d)]
    calls = []
    original = ODConv2d.update_temperature

    def counting(self, temperature):
        calls.append(self)
        original(self, temperature)

    monkeypatch.setattr(ODConv2d, 'update_temperature', counting)
    assert len(convs) == 3
    hook = ODConvTemperatureHook(start=9, end=1, warmup_epochs=4)
    hook.before_train_epoch(make_runner(model, epoch=2))
    assert sorted(map(id, calls)) == sorted(map(id, convs))
    assert temperatures(model) == pytest.approx([5.0] * 3)
    calls.clear()
    hook = ODConvTemperatureHook(
        start=9, end=1, warmup_epochs=4, by_epoch=False)
    for it in range(3):
        hook.before_train_iter(make_runner(model, it=it), it)
    assert sorted(map(id, calls)) == sorted(map(id, convs * 3))
