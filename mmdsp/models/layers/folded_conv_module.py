"""A ConvModule whose training BatchNorm and Swish keep one map, not two."""
import torch
from mmcv.cnn import ConvModule
from mmcv.cnn.bricks.swish import Swish
from torch import nn

from ._bn_fold import bn_swish_train
from ._impl import kernels_for
from .swish import MemoryEfficientSwish


class FoldedConvModule(ConvModule):
    """:class:`mmcv.cnn.ConvModule` (conv -> BN -> Swish) whose training
    forward folds the BN into the Swish (``_bn_fold.py``): the backward
    keeps the conv output only, instead of the conv output (for BN) and the
    normalised map (for Swish). The same modules, state_dict and outputs up
    to float rounding. Only the device kernels fold (GPUs, where memory is
    short; ``mmdsp.models.layers._impl``): on a CPU, in eval mode, with
    other norms or activations, hooks or the reference kernels it is
    ConvModule's own forward.

    Dy-MBConv's expansion conv is one (:func:`fold_bn_act`): its stage-2/3
    maps are the largest of the network, where the block's extra depthwise
    unit costs EfficientNet-DSP its activation memory (``docs/gpu.md``).
    Takes ConvModule's arguments.
    """

    def forward(self, x, activate=True, norm=True):
        if activate and norm and self._foldable(x):
            return bn_swish_train(self.norm, self.conv(x))
        return super().forward(x, activate, norm)

    def _foldable(self, x) -> bool:
        if not (self.training and torch.is_grad_enabled()
                and self.with_norm and self.with_activation
                and self.order == ('conv', 'norm', 'act')
                and kernels_for(x) == 'device'):
            return False
        norm, act = self.norm, self.activate
        return (type(norm) is nn.BatchNorm2d and norm.training
                and type(act) in (Swish, MemoryEfficientSwish)
                and not self.with_explicit_padding and not any(
                    m._forward_hooks or m._forward_pre_hooks
                    for m in (self.conv, norm, act)))


def fold_bn_act(module: ConvModule) -> ConvModule:
    """Give a built ConvModule the forward of :class:`FoldedConvModule`, in
    place: its modules, parameters and initial weights stay as they are
    (rebuilding it would draw new ones).

    Args:
        module (ConvModule): Exactly a ConvModule.

    Returns:
        ConvModule: ``module``.
    """
    if type(module) is not ConvModule:
        raise TypeError(f'fold_bn_act: expects an mmcv ConvModule, got '
                        f'{type(module).__name__}')
    module.__class__ = FoldedConvModule
    return module
