"""No host sync in a training iteration (the GPU path, checked on a CPU).

A host sync is a read of a device tensor's value on the host (``.item()``,
``float()``, ``bool()``, ``.tolist()``: all ``aten._local_scalar_dense``) or
a copy between the host and the device. ``FakeTensorMode`` gives tensors
that claim to be on CUDA without a GPU, so the forward and the loss of each
model run there as they would on a GPU; autograd's engine needs a real CUDA
context, so the backward and the optimizer step are checked on real CPU
tensors, where a read of a value is the same ``_local_scalar_dense``.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from mmdsp.engine.hooks import NaNLossHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The shipped model configs, at B0 size: the DSP model with all its bricks,
# EfficientNetV2 and the table-4 rows that use a brick on its own.
CONFIGS = ['effdsp_all.py', 'efficientnetv2-s_all.py', 'ablation/pfl_all.py']


class HostSyncs(TorchDispatchMode):
    """Records every op that reads a tensor's value on the host or copies
    between the host and a device."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.seen.append('value read on the host (item/float/bool)')
            # A FakeTensor has no value: answer for it so the step goes on.
            return 0
        if func is torch.ops.aten._to_copy.default and 'device' in kwargs:
            src, dst = args[0].device, torch.device(kwargs['device'])
            if (src.type == 'cpu') != (dst.type == 'cpu'):
                self.seen.append(f'copy {src} -> {dst}')
        if func is torch.ops.aten.copy_.default:
            dst, src = args[0].device, args[1].device
            if (src.type == 'cpu') != (dst.type == 'cpu') and \
                    args[1].dim() > 0:
                self.seen.append(f'copy_ {src} -> {dst}')
        return func(*args, **kwargs)


def _model(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    cfg.model.backbone.arch = 'b0'
    return MODELS.build(cfg.model)


def _set_omega(model):
    loss = model.head.loss_module
    if getattr(loss, 'auto_omega', False):
        # What ClassFrequencyOmegaHook does before training, on a model
        # already on its device: omega starts on the host.
        loss.set_omega([1.0, 0.5, 0.5, 0.6])


def _batch(n=2, size=64):
    return dict(
        inputs=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8),
        data_samples=[DataSample().set_gt_label(i % 4) for i in range(n)])


@pytest.mark.parametrize('name', CONFIGS)
def test_forward_and_loss_on_fake_cuda_do_not_sync(name):
    model = _model(name).train()
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake:
        model = model.to('cuda')
    _set_omega(model)  # checked on the host, like the hook's
    with fake:
        data = model.data_preprocessor(_batch(), True)
        # The first step may move what a hook set on the host (PolyFocal's
        # omega) to the device, once; the second must not copy anything.
        model(**data, mode='loss')
        syncs = HostSyncs()
        with syncs:
            losses = model(**data, mode='loss')
    assert losses['loss'].device.type == 'cuda'
    assert syncs.seen == [], f'{name}: {syncs.seen}'


@pytest.mark.parametrize('name', CONFIGS)
def test_train_step_reads_no_value(name):
    torch.manual_seed(0)
    model = _model(name).train()
    _set_omega(model)
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    data = _batch()
    syncs = HostSyncs()
    with syncs:
        log_vars = model.train_step(data, optim)
    assert torch.isfinite(log_vars['loss'])
    assert syncs.seen == [], f'{name}: {syncs.seen}'


def test_host_syncs_catches_a_read():
    # The detector itself: an .item() in the loss is seen.
    syncs = HostSyncs()
    with syncs:
        x = torch.ones(3, requires_grad=True)
        (x * float(x.detach().sum())).sum().backward()
    assert syncs.seen


def test_nan_loss_hook_reads_device_losses_only_at_its_interval():
    hook = NaNLossHook(interval=3)
    runner = type('R', (), dict(epoch=0, iter=0, train_dataloader=[0] * 9))
    with FakeTensorMode():
        loss = torch.ones((), device='cuda')
        syncs = HostSyncs()
        with syncs:
            for i in range(2):
                runner.iter = i
                hook.after_train_iter(runner, i, outputs=dict(loss=loss))
        assert syncs.seen == []
        with syncs:
            hook.after_train_iter(runner, 2, outputs=dict(loss=loss))
        assert syncs.seen  # the interval's read (answered 'finite')
