"""Per-stage feature statistics of a classifier's backbone, for the
out-of-distribution score of :func:`mmdsp.evaluation.stage_distance`.

The pre-logits feature says what the head makes of an image; the earlier
stages say what the image is made of (colour, texture, scale), which is
where a drawn smear, a photo or a cell at another magnification differs
from the training images. Each stage's output (N, C, H, W) is summarised
by its per-channel spatial mean and (population) standard deviation.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['stage_modules', 'StageStatistics']


def stage_modules(model: nn.Module,
                  names: Optional[Sequence[str]] = None) -> List[str]:
    """Dotted names of the backbone stages whose outputs are summarised.

    Args:
        model (nn.Module): The classifier (with a ``backbone``).
        names (Sequence[str], optional): Dotted submodule names. Defaults to
            the backbone's direct children, a ``ModuleList`` (the stages of
            MMPretrain's EfficientNet, MobileNet, ...) opened one level.

    Returns:
        list[str]: The names, in forward order for the default.
    """
    if names:
        for name in names:
            try:
                model.get_submodule(name)
            except AttributeError as e:
                raise ValueError(f'stage {name!r} is not a submodule of the '
                                 f'model: {e}') from None
        return list(names)
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise ValueError('the model has no `backbone`; name its stages')
    out = []
    for child, module in backbone.named_children():
        if isinstance(module, nn.ModuleList):
            out += [f'backbone.{child}.{i}' for i in range(len(module))]
        else:
            out.append(f'backbone.{child}')
    return out


class StageStatistics:
    """Record the per-channel mean and std of stage outputs while the model
    runs inside ``with``.

    Args:
        model (nn.Module): The classifier.
        names (Sequence[str], optional): Stages, see :func:`stage_modules`.

    Example::

        with StageStatistics(model) as stats:
            model.extract_feat(inputs)
        feats = stats.pop()  # (N, sum of 2 * C over the stages)
    """

    def __init__(self, model: nn.Module,
                 names: Optional[Sequence[str]] = None):
        self.model = model
        self.names = stage_modules(model, names)
        self._outputs = {}
        self._handles = []
        self.recorded = []

    def _hook(self, name):

        def record(module, args, output):
            # Stages that do not give a feature map (a flatten, a pooling
            # neck) carry no spatial statistics: skipped.
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                x = output.detach().float()
                # population std: a 1x1 map (a small input's last stages)
                # has std 0, not NaN
                self._outputs[name] = torch.cat(
                    [x.mean((2, 3)), x.std((2, 3), correction=0)], 1).cpu()

        return record

    def __enter__(self):
        for name in self.names:
            module = self.model.get_submodule(name)
            self._handles.append(
                module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def pop(self) -> List[torch.Tensor]:
        """The statistics of the last forward, one (N, 2C) tensor per stage
        that gave a feature map, in the order of ``names`` (their names in
        ``recorded``); then forget them."""
        self.recorded = [n for n in self.names if n in self._outputs]
        out = [self._outputs[n] for n in self.recorded]
        self._outputs = {}
        return out
