"""Seed every epoch from (seed, epoch) so that ``--resume`` is exact."""
import logging
import multiprocessing
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


class _EpochSeededPipeline:
    """A dataset pipeline that, inside a dataloader worker, reseeds the
    worker's generators with ``epoch_seed(seed, epoch, rank, worker_id)``
    at its first sample of every epoch: what a respawned worker's
    ``worker_init_fn`` does, for workers that persist across epochs. The
    epoch comes from the main process through shared memory.

    Args:
        pipeline (callable): The dataset's pipeline.
        epoch (multiprocessing.Value): The current epoch, set by the hook.
        seed (int): The run's seed.
        rank (int): The process's rank.
    """

    def __init__(self, pipeline, epoch, seed, rank):
        self.pipeline = pipeline
        self.epoch = epoch
        self.seed = seed
        self.rank = rank
        self._seeded = None

    def __call__(self, results):
        info = torch.utils.data.get_worker_info()
        epoch = self.epoch.value
        if info is not None and self._seeded != epoch:
            _seed_all(epoch_seed(self.seed, epoch, self.rank, info.id))
            self._seeded = epoch
        return self.pipeline(results)

    def __getattr__(self, name):
        # Transforms are looked up on the pipeline (e.g. ImgSizeHook).
        if name == 'pipeline':
            raise AttributeError(name)
        return getattr(self.pipeline, name)


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

    Workers with ``persistent_workers=True`` (no respawn every epoch, the
    configs' default) are not seeded again by ``worker_init_fn``: the hook
    wraps the training dataset's pipeline so that each worker reseeds
    itself the same way at its first sample of an epoch, the epoch reaching
    it through shared memory. Only epoch-based training is covered:
    mmengine resumes at epoch boundaries.

    Args:
        priority (int | str): Hook priority; ``'VERY_HIGH'`` so that the
            reseed comes before any other hook's ``before_train_epoch``.
            Defaults to ``'VERY_HIGH'``.
    """

    def __init__(self, priority='VERY_HIGH'):
        self.priority = priority

    def before_train(self, runner) -> None:
        self._epoch = None
        loader = runner.train_dataloader
        if runner.seed is None or getattr(loader, 'num_workers', 0) == 0 \
                or not getattr(loader, 'persistent_workers', False):
            return
        dataset = loader.dataset
        if not callable(getattr(dataset, 'pipeline', None)):
            print_log(
                'EpochSeedHook: train_dataloader has persistent_workers=True '
                f'and its dataset ({type(dataset).__name__}) has no pipeline '
                'to reseed the workers through, so a resumed run will not '
                'reproduce the uninterrupted one. Set '
                'train_dataloader.persistent_workers=False for exact resume.',
                logger='current',
                level=logging.WARNING)
            return
        # Made before the workers start, which inherit it.
        self._epoch = multiprocessing.Value('q', 0)
        dataset.pipeline = _EpochSeededPipeline(dataset.pipeline,
                                                self._epoch, runner.seed,
                                                get_rank())

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
        if getattr(self, '_epoch', None) is not None:
            self._epoch.value = epoch

        loader = runner.train_dataloader
        init_fn = getattr(loader, 'worker_init_fn', None)
        ours = (mmengine_worker_init_fn, _epoch_worker_init)
        # A user-supplied worker_init_fn is left alone.
        if isinstance(init_fn, partial) and init_fn.func in ours:
            kwargs = dict(init_fn.keywords)
            kwargs.update(seed=seed, epoch=epoch)
            loader.worker_init_fn = partial(_epoch_worker_init, **kwargs)
