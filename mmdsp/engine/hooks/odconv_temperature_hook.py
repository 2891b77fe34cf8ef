"""Temperature annealing of the ODConv kernel attention."""
from typing import Optional

from mmpretrain.registry import HOOKS

from ._brick_hook import BrickHook


@HOOKS.register_module()
class ODConvTemperatureHook(BrickHook):
    """Linearly anneal the kernel-attention temperature of dynamic convs.

    Dynamic convolution (Chen et al., CVPR 2020) starts with a high softmax
    temperature, so that every candidate kernel receives gradient while the
    attention is still random, and lowers it to 1 during the first epochs:

    .. math::

        T(e) = T_{start} + (T_{end} - T_{start})
        \\min(e / E_{warmup}, 1)

    where ``e`` is the number of epochs done (fractional with
    ``by_epoch=False``). Before each training epoch (or iteration) the value
    is passed to ``update_temperature`` of every module of the model that
    has one (:class:`ODConv2d`, :class:`DyODConv`) and is not inside another
    (a DyODConv passes it on to its ODConv2d, which is so set once),
    unwrapping DDP-like wrappers, and logged as
    ``train/odconv_temperature``. On a model without
    such a module the hook warns once and does nothing.

    Args:
        start (float): Temperature at the start of training.
            Defaults to 30.0.
        end (float): Temperature after the warm-up. Defaults to 1.0.
        warmup_epochs (float): Length of the anneal in epochs (passes over
            the training dataloader, also with ``by_epoch=False``); 0 uses
            ``end`` from the start. Defaults to 10.
        by_epoch (bool): Update before each epoch, or before each iteration
            with a fractional epoch ``iter / len(train_dataloader)``.
            Defaults to True.
    """

    priority = 'NORMAL'
    brick = 'module with `update_temperature` (ODConv2d / DyODConv)'

    def __init__(self,
                 start: float = 30.0,
                 end: float = 1.0,
                 warmup_epochs: float = 10,
                 by_epoch: bool = True):
        if not (start > 0 and end > 0):
            raise ValueError('ODConvTemperatureHook: start and end must be '
                             f'positive, got start={start}, end={end}')
        if warmup_epochs < 0:
            raise ValueError('ODConvTemperatureHook: warmup_epochs must be '
                             f'>= 0, got {warmup_epochs}')
        self.start = float(start)
        self.end = float(end)
        self.warmup_epochs = warmup_epochs
        self.by_epoch = by_epoch

    def temperature(self, epoch: float) -> float:
        """The temperature after ``epoch`` (possibly fractional) epochs."""
        if self.warmup_epochs == 0:
            return self.end
        progress = min(max(epoch / self.warmup_epochs, 0.0), 1.0)
        return self.start + (self.end - self.start) * progress

    def is_target(self, module) -> bool:
        return callable(getattr(module, 'update_temperature', None))

    def _apply(self, runner, epoch: float) -> None:
        modules = self.targets(runner)
        if not modules:
            return
        value = self.temperature(epoch)
        for module in modules:
            module.update_temperature(value)
        runner.message_hub.update_scalar('train/odconv_temperature', value)

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch:
            self._apply(runner, runner.epoch)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        if not self.by_epoch:
            iters_per_epoch = len(runner.train_dataloader)
            self._apply(runner, runner.iter / iters_per_epoch)
