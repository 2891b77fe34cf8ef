"""mmdsp's registries: one child of each MMPretrain registry, scope ``mmdsp``.

mmdsp registers its modules in MMPretrain's registries (its reusable bricks
in mmengine's root ``MODELS``), so plain MMPretrain configs find them, and
nothing is registered here. These children exist for configs that inherit
ours as a package base, ``_base_ = 'mmdsp::effdsp_all.py'``: mmengine gives
the modules of such a base ``_scope_='mmdsp'``, imports ``mmdsp.registry``
and builds them from the registry of that scope. Each child finds every name
of its MMPretrain parent and of the parents above it (mmcv, mmengine).
"""
import mmpretrain.registry as mmpretrain_registry
from mmengine.registry import Registry

__all__ = list(mmpretrain_registry.__all__)


def _child(name):
    parent = getattr(mmpretrain_registry, name)
    return Registry(
        parent.name, parent=parent, scope='mmdsp', locations=['mmdsp'])


# RUNNERS, LOOPS, HOOKS, ..., MODELS, METRICS, VISBACKENDS: the same names as
# mmpretrain.registry.
globals().update({name: _child(name) for name in __all__})
