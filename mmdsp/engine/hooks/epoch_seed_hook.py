"""Seed every epoch from (seed, epoch) so that ``--resume`` is exact."""
import logging
import random
from functools import partial

import numpy as np
import torch
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

__all__ = ['EpochSeedHook', 'epoch_seed']


def epoch_seed(*entropy: int) -> int:
    """A 32-bit seed mixed from integers (seed, epoch, rank, ...).

    ``SeedSequence`` hashes its entropy, so neighbouring epochs or ranks get
    unrelated streams (unlike ``seed + epoch``, which makes epoch 1 of seed 0
    replay epoch 0 of seed 1).
    """
    # SeedSequence wants non-negative entropy; users may pass seed=-1.
    entropy = [int(e) % 2**64 for e in entropy]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _epoch_worker_init(worker_id: int,
                       num_workers: int,
                       rank: int,
                       seed: int,
                       epoch: int,
                       disable_subprocess_warning: bool = False) -> None:
    """Dataloader ``worker_init_fn``: mmengine's, reseeded with the epoch."""
    mmengine_worker_init_fn(worker_id, num_workers, rank, seed,
                            disable_subprocess_warning)
    _seed_all(epoch_seed(seed, epoch, rank, worker_id))


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Make each training epoch's randomness a function of (seed, epoch).

    mmengine 0.10.7 seeds Python, numpy and torch once, when the runner is
    built, and does not store the generator states in checkpoints. After
    ``--resume`` the generators therefore restart from the seed, and random
    augmentation (flip, rotation, noise), dropout, DropBlock and
    stochastic depth draw different numbers than the uninterrupted run did:
    the resumed run diverges. Storing the states in the checkpoint is not
    enough either, because validation after the checkpoint also draws from
    the torch generator (each dataloader iterator takes a base seed).

    Before every training epoch this hook reseeds the three generators with
    ``epoch_seed(seed, epoch)`` (plus the rank when ``randomness`` has
    ``diff_rank_seed=True``), so an epoch's random numbers no longer depend
    on what ran before it. Dataloader workers, which mmengine seeds with
    ``seed + worker_id + rank * num_workers`` (the same numbers in every
    epoch), get ``epoch_seed(seed, epoch, rank, worker_id)`` instead.
    The sampler order was already exact (``DefaultSampler`` shuffles with
    ``seed + epoch``).

    Limits: workers with ``persistent_workers=True`` are seeded once, at
    their start, so an exact resume with ``num_workers > 0`` needs
    ``persistent_workers=False``; the hook warns about it. Only
    epoch-based training is covered: mmengine resumes at epoch boundaries.

    Args:
        priority (int | str): Hook priority; ``'VERY_HIGH'`` so that the
            reseed comes before any other hook's ``before_train_epoch``.
            Defaults to ``'VERY_HIGH'``.
    """

    def __init__(self, priority='VERY_HIGH'):
        self.priority = priority

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        if getattr(loader, 'num_workers', 0) > 0 and getattr(
                loader, 'persistent_workers', False):
            print_log(
                'EpochSeedHook: train_dataloader has persistent_workers=True; '
                'its workers keep their random state across epochs, so a '
                'resumed run will not reproduce the uninterrupted one. Set '
                'train_dataloader.persistent_workers=False for exact resume.',
                logger='current',
                level=logging.WARNING)

    def before_train_epoch(self, runner) -> None:
        seed = runner.seed
        if seed is None:
            return
        epoch = runner.epoch
        entropy = [seed, epoch]
        randomness = getattr(runner, '_randomness_cfg', {}) or {}
        if randomness.get('diff_rank_seed', False):
            entropy.append(get_rank())
        _seed_all(epoch_seed(*entropy))

        loader = runner.train_dataloader
        init_fn = getattr(loader, 'worker_init_fn', None)
        ours = (mmengine_worker_init_fn, _epoch_worker_init)
        # A user-supplied worker_init_fn is left alone.
        if isinstance(init_fn, partial) and init_fn.func in ours:
            kwargs = dict(init_fn.keywords)
            kwargs.update(seed=seed, epoch=epoch)
            loader.worker_init_fn = partial(_epoch_worker_init, **kwargs)
