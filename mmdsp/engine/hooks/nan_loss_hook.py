"""Stop training on a non-finite loss before a poisoned checkpoint is saved."""
import math
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

__all__ = ['NaNLossHook', 'NonFiniteLossError']


class NonFiniteLossError(RuntimeError):
    """Raised by :class:`NaNLossHook`: the loss or the weights are NaN/inf."""


def _to_float(value) -> Optional[float]:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            # parse_losses already averages; a vector here is a custom log
            # entry, judged by its worst element.
            bad = value[~torch.isfinite(value)]
            return float(bad[0]) if bad.numel() else float(value.mean())
        return float(value.detach())
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class NaNLossHook(Hook):
    """Raise :class:`NonFiniteLossError` as soon as the loss is NaN or inf.

    Once a loss is NaN the optimizer step of the same iteration has already
    written NaN into the weights, and every later epoch checkpoint would hold
    them (``max_keep_ckpts`` then deletes the good ones). This hook checks,
    in order:

    * ``after_train_iter``: every ``loss*`` entry the model returned. Its
      priority (``VERY_HIGH``) puts it before ``CheckpointHook``
      (``VERY_LOW``), so neither an iteration-based nor the epoch checkpoint
      of a failed epoch is written. Under distributed training the verdict
      is all-reduced, so every rank stops at the same iteration instead of
      the healthy ranks hanging in the next collective.
    * ``after_train_epoch`` (again before ``CheckpointHook``): that the
      parameters themselves are finite, which catches an overflow in the
      last step of an epoch whose loss was still finite.
    * ``before_save_checkpoint``: a last guard for checkpoints saved
      elsewhere (e.g. ``save_best`` after validation).

    The error names the epoch, the iteration, the loss values and the last
    checkpoint written, which stays intact for ``--resume``.

    Args:
        check_weights (bool): Also check the parameters after each epoch and
            before each checkpoint save. Defaults to True.
        priority (int | str): Hook priority. Keep it above ``CheckpointHook``
            (``'VERY_LOW'``). Defaults to ``'VERY_HIGH'``.
    """

    def __init__(self, check_weights: bool = True, priority='VERY_HIGH'):
        self.check_weights = check_weights
        self.priority = priority

    def _where(self, runner, batch_idx: Optional[int] = None) -> str:
        # Same 1-based numbering as LoggerHook's "Epoch(train) [e][i/n]".
        where = f'epoch {runner.epoch + 1}'
        if batch_idx is not None:
            try:
                total = f'/{len(runner.train_dataloader)}'
            except TypeError:
                total = ''
            where += (f', iteration {batch_idx + 1}{total} of the epoch '
                      f'(global iteration {runner.iter + 1})')
        return where

    @staticmethod
    def _last_checkpoint(runner) -> str:
        last = runner.message_hub.get_info('last_ckpt')
        if last:
            return (f'The last checkpoint written, {last}, holds the '
                    'weights from before the failure: resume from it with '
                    'a lower learning rate or fixed data.')
        return 'No checkpoint had been written yet.'

    def _bad_ranks(self, local_bad: bool) -> List[int]:
        world_size = get_world_size()
        if world_size == 1:
            return [0] if local_bad else []
        flags = torch.zeros(world_size)
        flags[get_rank()] = float(local_bad)
        all_reduce(flags)
        return [i for i, f in enumerate(flags.tolist()) if f > 0]

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        losses = {}
        if isinstance(outputs, dict):
            for key, value in outputs.items():
                if 'loss' in key:
                    value = _to_float(value)
                    if value is not None:
                        losses[key] = value
        local_bad = any(not math.isfinite(v) for v in losses.values())
        bad_ranks = self._bad_ranks(local_bad)
        if not bad_ranks:
            return
        values = ', '.join(f'{k}={v}' for k, v in losses.items())
        seen = values if local_bad else f'finite on this rank ({values})'
        ranks = f' on rank(s) {bad_ranks}' if get_world_size() > 1 else ''
        raise NonFiniteLossError(
            f'NaNLossHook: non-finite loss{ranks} at '
            f'{self._where(runner, batch_idx)}: {seen}. Training stopped '
            'before this epoch was checkpointed. '
            f'{self._last_checkpoint(runner)}')

    def _non_finite_params(self, runner) -> List[str]:
        return [
            name for name, p in get_ori_model(runner.model).named_parameters()
            if not torch.isfinite(p.detach()).all()
        ]

    def after_train_epoch(self, runner) -> None:
        if not self.check_weights:
            return
        bad = self._non_finite_params(runner)
        if bad:
            raise NonFiniteLossError(
                f'NaNLossHook: {len(bad)} parameter tensor(s) hold NaN/inf '
                f'at the end of {self._where(runner)} although every loss '
                f'was finite (first: {bad[0]}); the epoch checkpoint is not '
                f'saved. {self._last_checkpoint(runner)}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.check_weights:
            return
        state = checkpoint.get('state_dict', {})
        bad = [
            name for name, t in state.items() if isinstance(t, torch.Tensor)
            and t.is_floating_point() and not torch.isfinite(t).all()
        ]
        if bad:
            raise NonFiniteLossError(
                f'NaNLossHook: refusing to save a checkpoint at '
                f'{self._where(runner)}: {len(bad)} tensor(s) of its '
                f'state_dict hold NaN/inf (first: {bad[0]}). '
                f'{self._last_checkpoint(runner)}')
