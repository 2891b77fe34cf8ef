import random
from functools import partial
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.dataset import worker_init_fn

import mmdsp  # noqa: F401
from mmdsp.engine.hooks import EpochSeedHook
from mmdsp.engine.hooks.epoch_seed_hook import epoch_seed


def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(())))


def _runner(epoch, seed=0, init_fn=None, **randomness):
    loader = SimpleNamespace(worker_init_fn=init_fn,
                             num_workers=2,
                             persistent_workers=False)
    return SimpleNamespace(seed=seed,
                           epoch=epoch,
                           train_dataloader=loader,
                           _randomness_cfg=dict(seed=seed, **randomness))


def test_epoch_draws_depend_only_on_seed_and_epoch():
    hook = EpochSeedHook()
    hook.before_train_epoch(_runner(3))
    first = _draws()
    # Whatever ran before (another epoch, validation, a resume) ...
    _draws()
    torch.randn(100)
    hook.before_train_epoch(_runner(3))
    assert _draws() == first
    hook.before_train_epoch(_runner(4))
    assert _draws() != first
    hook.before_train_epoch(_runner(3, seed=1))
    assert _draws() != first


def test_epoch_seed_separates_neighbours():
    # seed + epoch would make (seed 0, epoch 1) replay (seed 1, epoch 0).
    assert epoch_seed(0, 1) != epoch_seed(1, 0)


def test_worker_init_fn_gets_the_epoch():
    init = partial(worker_init_fn,
                   num_workers=2,
                   rank=0,
                   seed=0,
                   disable_subprocess_warning=False)
    runner = _runner(5, init_fn=init)
    EpochSeedHook().before_train_epoch(runner)
    new_init = runner.train_dataloader.worker_init_fn
    assert new_init.keywords['epoch'] == 5
    new_init(1)
    first = _draws()
    new_init(1)
    assert _draws() == first
    runner.epoch = 6
    EpochSeedHook().before_train_epoch(runner)
    runner.train_dataloader.worker_init_fn(1)
    assert _draws() != first

    # A user's own worker_init_fn is not replaced.
    custom = partial(print)
    runner = _runner(5, init_fn=custom)
    EpochSeedHook().before_train_epoch(runner)
    assert runner.train_dataloader.worker_init_fn is custom


def test_no_seed_leaves_generators_alone():
    torch.manual_seed(123)
    expected = torch.rand(())
    torch.manual_seed(123)
    EpochSeedHook().before_train_epoch(_runner(0, seed=None))
    assert torch.rand(()) == expected


class _RandomDataset(torch.utils.data.Dataset):
    """Each item is a draw of the worker's generators, through a pipeline
    as mmengine datasets have one."""

    def __init__(self):
        self.pipeline = lambda results: _draws()

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.pipeline(i)


def _epochs_with_persistent_workers(first, last):
    loader = torch.utils.data.DataLoader(_RandomDataset(), batch_size=2,
                                         num_workers=2,
                                         persistent_workers=True)
    runner = SimpleNamespace(seed=0, epoch=first, train_dataloader=loader,
                             _randomness_cfg=dict(seed=0))
    hook = EpochSeedHook()
    hook.before_train(runner)
    draws = {}
    for epoch in range(first, last + 1):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        draws[epoch] = [tuple(map(tuple, batch)) for batch in loader]
    return draws


def test_persistent_workers_resume_exactly():
    # Workers that live across epochs are reseeded per epoch too: a run
    # resumed at epoch 2 draws what the uninterrupted run drew there.
    full = _epochs_with_persistent_workers(0, 2)
    assert full[0] != full[1] != full[2]
    resumed = _epochs_with_persistent_workers(2, 2)
    assert resumed[2] == full[2]
