"""Stop training on a non-finite loss before a poisoned checkpoint is saved."""
import math
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...utils.checks import check_int

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

    * ``after_train_iter``: every ``loss*`` entry the model returned. A loss
      on the CPU is read at once. A loss on a GPU is not: reading it would
      make the host wait for the device every iteration, so the verdict is
      kept on the device (a flag and the first bad iteration, updated
      without a sync) and read every ``interval`` iterations, at the end of
      every epoch and before every checkpoint save. Its priority
      (``VERY_HIGH``) puts it before ``CheckpointHook`` (``VERY_LOW``), so
      neither an iteration-based nor the epoch checkpoint of a failed epoch
      is written. Under distributed training the verdict is all-reduced at
      those same points, so every rank stops together instead of the
      healthy ranks hanging in the next collective.
    * ``after_train_epoch`` (again before ``CheckpointHook``): that the
      parameters themselves are finite, which catches an overflow in the
      last step of an epoch whose loss was still finite.
    * ``before_save_checkpoint``: a last guard for checkpoints saved
      elsewhere (e.g. ``save_best`` after validation).

    The error names the epoch, the iteration, the loss values (of the first
    bad iteration) and the last checkpoint written, which stays intact for
    ``--resume``.

    Args:
        check_weights (bool): Also check the parameters after each epoch and
            before each checkpoint save. Defaults to True.
        interval (int): Iterations between two reads of a device-side
            verdict. Defaults to 20, the logging interval of the configs.
        priority (int | str): Hook priority. Keep it above ``CheckpointHook``
            (``'VERY_LOW'``). Defaults to ``'VERY_HIGH'``.
    """

    def __init__(self,
                 check_weights: bool = True,
                 interval: int = 20,
                 priority='VERY_HIGH'):
        self.check_weights = check_weights
        self.interval = check_int('NaNLossHook', 'interval', interval)
        self.priority = priority
        self._pending = None

    def _where(self, runner, batch_idx: Optional[int] = None,
               epoch: Optional[int] = None,
               global_iter: Optional[int] = None) -> str:
        # Same 1-based numbering as LoggerHook's "Epoch(train) [e][i/n]".
        epoch = runner.epoch if epoch is None else epoch
        global_iter = runner.iter if global_iter is None else global_iter
        where = f'epoch {epoch + 1}'
        if batch_idx is not None:
            try:
                total = f'/{len(runner.train_dataloader)}'
            except TypeError:
                total = ''
            where += (f', iteration {batch_idx + 1}{total} of the epoch '
                      f'(global iteration {global_iter + 1})')
        return where

    @staticmethod
    def _last_checkpoint(runner) -> str:
        last = runner.message_hub.get_info('last_ckpt')
        if last:
            return (f'The last checkpoint written, {last}, holds the '
                    'weights from before the failure: resume from it with '
                    'a lower learning rate or fixed data.')
        return 'No checkpoint had been written yet.'

    @staticmethod
    def _bad_ranks(local_bad: bool, device='cpu') -> List[int]:
        world_size = get_world_size()
        if world_size == 1:
            return [0] if local_bad else []
        # On the verdict's device: NCCL reduces CUDA tensors only.
        flags = torch.zeros(world_size, device=device)
        flags[get_rank()] = float(local_bad)
        all_reduce(flags)
        return [i for i, f in enumerate(flags.tolist()) if f > 0]

    def _raise(self, runner, bad_ranks, local_bad, losses, where):
        values = ', '.join(f'{k}={v}' for k, v in losses.items())
        seen = values if local_bad else f'finite on this rank ({values})'
        ranks = f' on rank(s) {bad_ranks}' if get_world_size() > 1 else ''
        raise NonFiniteLossError(
            f'NaNLossHook: non-finite loss{ranks} at {where}: {seen}. '
            'Training stopped before this epoch was checkpointed. '
            f'{self._last_checkpoint(runner)}')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        losses = {}
        if isinstance(outputs, dict):
            losses = {k: v for k, v in outputs.items() if 'loss' in k
                      and isinstance(v, (torch.Tensor, int, float))}
        device = next((v.device for v in losses.values()
                       if isinstance(v, torch.Tensor)), None)
        if device is None or device.type == 'cpu':
            self._check_now(runner, batch_idx, losses)
            return
        self._record(runner, batch_idx, losses, device)
        if len(self._pending['where']) >= self.interval:
            self._check_pending(runner)

    def _check_now(self, runner, batch_idx, losses):
        losses = {k: _to_float(v) for k, v in losses.items()}
        local_bad = any(not math.isfinite(v) for v in losses.values())
        bad_ranks = self._bad_ranks(local_bad)
        if bad_ranks:
            self._raise(runner, bad_ranks, local_bad, losses,
                        self._where(runner, batch_idx))

    def _record(self, runner, batch_idx, losses, device):
        """Fold this iteration's losses into the device-side verdict
        without reading them on the host."""
        values = torch.stack([
            torch.as_tensor(v, dtype=torch.float32,
                            device=device).detach().float().mean()
            for v in losses.values()
        ])
        bad = ~torch.isfinite(values).all()
        state = self._pending
        if state is None or state['keys'] != list(losses):
            if state is not None:
                self._check_pending(runner)
            state = self._pending = dict(
                keys=list(losses), where=[],
                bad=torch.zeros((), dtype=torch.bool, device=device),
                first=torch.zeros((), dtype=torch.long, device=device),
                values=torch.zeros_like(values))
        # Index of this iteration among the recorded ones, kept on the host
        # (its epoch, batch and global iteration) and found by the device.
        index = len(state['where'])
        state['where'].append((batch_idx, runner.epoch, runner.iter))
        new = bad & ~state['bad']
        state['first'] = torch.where(new, index, state['first'])
        state['values'] = torch.where(new, values, state['values'])
        state['bad'] = state['bad'] | bad

    def _check_pending(self, runner) -> None:
        """Read the device-side verdict (one host sync) and raise if a
        recorded iteration had a non-finite loss."""
        state, self._pending = self._pending, None
        if state is None:
            return
        local_bad = bool(state['bad'])
        bad_ranks = self._bad_ranks(local_bad, state['bad'].device)
        if not bad_ranks:
            return
        batch_idx, epoch, global_iter = state['where'][int(state['first'])]
        losses = dict(zip(state['keys'], state['values'].tolist()))
        where = (self._where(runner, batch_idx, epoch, global_iter)
                 if local_bad else
                 f'an iteration up to {self._where(runner)}')
        self._raise(runner, bad_ranks, local_bad, losses, where)

    def after_train(self, runner) -> None:
        self._check_pending(runner)

    def _non_finite_params(self, runner) -> List[str]:
        return [
            name for name, p in get_ori_model(runner.model).named_parameters()
            if not torch.isfinite(p.detach()).all()
        ]

    def after_train_epoch(self, runner) -> None:
        self._check_pending(runner)
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
        self._check_pending(runner)
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
