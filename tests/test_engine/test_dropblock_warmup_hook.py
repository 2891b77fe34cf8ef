import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmpretrain.registry import HOOKS

import mmdsp  # noqa: F401  (registers the modules)
from mmdsp.engine.hooks import DropBlockWarmupHook
from mmdsp.models.layers import DyDropBlock


def make_model():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), DyDropBlock(0.2, 3),
        nn.Sequential(nn.ReLU(), DyDropBlock(0.1, 5)))


def fake_runner(model, max_iters):
    return SimpleNamespace(
        model=model,
        iter=0,
        max_iters=max_iters,
        message_hub=MessageHub.get_instance('test_dropblock_warmup'),
        logger=MMLogger.get_instance('test_dropblock_warmup'))


def run_iters(hook, runner, iters):
    blocks = [m for m in runner.model.modules() if isinstance(m, DyDropBlock)]
    seen = []
    for i in iters:
        runner.iter = i
        hook.before_train_iter(runner, batch_idx=i)
        seen.append([b.scale for b in blocks])
    return seen


def test_linear_ramp():
    runner = fake_runner(make_model(), max_iters=100)
    hook = HOOKS.build(dict(type='DropBlockWarmupHook', warmup_iters=10))
    assert isinstance(hook, DropBlockWarmupHook)
    hook.before_train(runner)
    seen = run_iters(hook, runner, [0, 1, 5, 9, 10, 50])
    assert seen == [[s, s] for s in (0.0, 0.1, 0.5, 0.9, 1.0, 1.0)]
    assert runner.message_hub.get_scalar(
        'train/dropblock_scale').current() == 1.0


def test_default_ramps_over_whole_run_and_resumes():
    runner = fake_runner(make_model(), max_iters=40)
    hook = DropBlockWarmupHook()
    # No before_train: a resumed run starting at iteration 30.
    seen = run_iters(hook, runner, [30, 39])
    assert seen == [[0.75, 0.75], [0.975, 0.975]]


def test_bad_warmup_iters():
    with pytest.raises(ValueError, match='warmup_iters'):
        DropBlockWarmupHook(warmup_iters=0)


def test_unwraps_ddp(tmp_path):
    if not dist.is_available():
        pytest.skip('torch.distributed is not available')
    dist.init_process_group(
        'gloo',
        init_method='file://' + osp.join(str(tmp_path), 'pg'),
        rank=0,
        world_size=1)
    try:
        model = make_model()
        wrapped = nn.parallel.DistributedDataParallel(model)
        runner = fake_runner(wrapped, max_iters=8)
        hook = DropBlockWarmupHook(warmup_iters=4)
        hook.before_train(runner)
        assert run_iters(hook, runner, [2]) == [[0.5, 0.5]]
        assert model[1].scale == 0.5
    finally:
        dist.destroy_process_group()


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.drop = DyDropBlock(0.2, 1)
        self.scales = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if self.training:
            self.scales.append(self.drop.scale)
        out = self.drop(self.conv(inputs))
        if mode == 'loss':
            return dict(loss=out.mean())
        return out


def test_in_runner(toy_runner):
    model = ToyModel()
    data = [dict(inputs=torch.randn(1, 4, 4)) for _ in range(8)]
    runner = toy_runner(model, data, 2, dict(by_epoch=False, max_iters=4),
                        [dict(type='DropBlockWarmupHook')])
    runner.train()
    assert model.scales == [0.0, 0.25, 0.5, 0.75]


def test_model_without_dropblock_warns_once(warnings_log):
    hook = DropBlockWarmupHook(warmup_iters=4)
    runner = fake_runner(nn.Conv2d(1, 1, 1), max_iters=8)
    runner.message_hub = MessageHub.get_instance('dropblock_hook_no_block')
    hook.before_train(runner)
    for it in range(3):
        runner.iter = it
        hook.before_train_iter(runner, batch_idx=it)
    assert len(warnings_log) == 1
    assert 'DropBlockWarmupHook' in warnings_log[0]
    assert 'DyDropBlock' in warnings_log[0]
    assert 'train/dropblock_scale' not in runner.message_hub.log_scalars


def test_follows_a_new_model():
    # The blocks are looked up once per model, not once per hook.
    hook = DropBlockWarmupHook(warmup_iters=4)
    first, second = make_model(), make_model()
    for model in (first, second):
        runner = fake_runner(model, max_iters=8)
        runner.iter = 2
        hook.before_train_iter(runner, batch_idx=2)
    assert second[1].scale == 0.5
