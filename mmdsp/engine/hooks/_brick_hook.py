"""Base of the hooks that act on the modules of one DSP brick (private)."""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.utils import get_ori_model


class BrickHook(Hook):
    """A hook that drives every module of one brick in the model, and does
    nothing (with one warning) on a model without it, so that one
    ``custom_hooks`` list serves every config.

    A target inside another target is left to the outer one, which drives
    it (a DyODConv passes its temperature on to its ODConv2d), so that each
    is set once per step.

    Subclasses set :attr:`brick` and define :meth:`is_target`.
    """

    #: What the hook looks for, as named in the warning.
    brick = 'target module'
    _cache = None
    _warned = False

    def is_target(self, module) -> bool:
        """Whether ``module`` is one the hook acts on."""
        raise NotImplementedError

    def targets(self, runner) -> list:
        """The target modules of ``runner.model`` (model wrappers such as DDP
        unwrapped), found once per model: its modules do not change during
        training, and some hooks ask every iteration."""
        model = get_ori_model(runner.model)
        if self._cache is None or self._cache[0] is not model:
            found = [m for m in model.modules() if self.is_target(m)]
            inner = {
                id(sub)
                for m in found for sub in m.modules() if sub is not m
            }
            self._cache = (model, [m for m in found if id(m) not in inner])
            if not self._cache[1] and not self._warned:
                self._warned = True
                print_log(
                    f'{type(self).__name__}: the model has no {self.brick}; '
                    'the hook does nothing.',
                    logger='current',
                    level=logging.WARNING)
        return self._cache[1]
