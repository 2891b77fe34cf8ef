"""Linear warm-up of every DyDropBlock's drop probability."""
from mmpretrain.registry import HOOKS

from mmdsp.models.layers.dydropblock import DyDropBlock
from ._brick_hook import BrickHook


@HOOKS.register_module()
class DropBlockWarmupHook(BrickHook):
    """Ramp every :class:`DyDropBlock`'s ``scale`` linearly from 0 to 1.

    The DropBlock paper found a fixed rate from the first iteration hurts
    and increases it linearly during training; here the factor at training
    iteration ``i`` (0-based) is ``min(i / warmup_iters, 1)``, applied before
    the iteration runs. It is recomputed from ``runner.iter`` at every
    iteration, so resumed runs continue the ramp where they stopped. On a
    model without DyDropBlock the hook warns once and does nothing.

    Args:
        warmup_iters (int, optional): Iterations of the ramp. Defaults to
            None, meaning the whole run (``runner.max_iters``), which is the
            DropBlock paper's schedule.
    """

    priority = 'NORMAL'
    brick = 'DyDropBlock'

    def __init__(self, warmup_iters=None):
        if warmup_iters is not None and (not isinstance(warmup_iters, int)
                                         or warmup_iters < 1):
            raise ValueError('DropBlockWarmupHook: warmup_iters must be a '
                             f'positive int or None, got {warmup_iters!r}')
        self.warmup_iters = warmup_iters

    def is_target(self, module) -> bool:
        return isinstance(module, DyDropBlock)

    def scale_at(self, cur_iter, max_iters):
        """The warm-up factor at 0-based iteration ``cur_iter``.

        Args:
            cur_iter (int): Current training iteration.
            max_iters (int): Total training iterations of the run.

        Returns:
            float: A factor in [0, 1].
        """
        total = self.warmup_iters or max_iters
        return min(max(cur_iter / total, 0.0), 1.0)

    def before_train(self, runner):
        # Warns now rather than at the first iteration.
        self.targets(runner)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        blocks = self.targets(runner)
        if not blocks:
            return
        scale = self.scale_at(runner.iter, runner.max_iters)
        for block in blocks:
            block.scale = scale
        runner.message_hub.update_scalar('train/dropblock_scale', scale)
