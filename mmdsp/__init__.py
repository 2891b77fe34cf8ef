"""mmdsp: EfficientNet-DSP for acute lymphoblastic leukemia, as an MMPretrain plugin.

Importing the package applies the compatibility fixes for the pinned stack
(:mod:`mmdsp.compat`) and registers every module, so ``custom_imports =
dict(imports=['mmdsp'])`` in a config is all a user needs.
"""
from . import compat  # noqa: F401  (first: later imports may load checkpoints)
from . import datasets, engine, evaluation, models  # noqa: F401
from .version import __version__

__all__ = ['__version__']
