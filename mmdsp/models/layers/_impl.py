"""The one switch between the reference and the tuned forwards of the bricks.

Every brick (:class:`SAR`, :class:`DyReLU`, :class:`DyDropBlock`,
:class:`ODConv2d`) opens its file with the forward written as the paper's
equation and keeps tuned versions of the same math in a private
``_*_kernels.py`` module beside it. All compute the same values (the tests
compare outputs and gradients against the reference).

The tuned kernels are chosen by device, per call: the CPU kernels (written
for glibc's allocator, oneDNN and a few cores) run only on NCHW-contiguous
CPU tensors; every other tensor (CUDA, any other device, channels_last)
takes the portable path, which keeps the input's dtype and memory format and
saves inputs rather than products for the backward (``docs/gpu.md``). Under
``torch.compile`` / ``torch.export`` the bricks use their traceable forms.
"""
from contextlib import contextmanager

import torch

# 'fast': by device (the default); 'device': the portable kernels on every
# device, so that a CPU can run and test what a GPU runs; 'reference': the
# readable forward of each equation.
IMPLS = ('fast', 'device', 'reference')
_impl = 'fast'


def set_impl(impl: str) -> None:
    """Choose the forward of every DSP brick, for the whole process.

    Args:
        impl (str): ``'fast'`` (the tuned kernels chosen by device, the
            default), ``'device'`` (the portable GPU kernels on every
            device, for debugging and CPU tests of the GPU path) or
            ``'reference'`` (the readable forward of each equation).
    """
    global _impl
    if impl not in IMPLS:
        raise ValueError(f'mmdsp.models.layers.set_impl: impl must be one of '
                         f'{IMPLS}, got {impl!r}')
    _impl = impl


def get_impl() -> str:
    """The forward the bricks use now: ``'fast'``, ``'device'`` or
    ``'reference'``."""
    return _impl


def kernels_for(x: torch.Tensor) -> str:
    """The kernels a brick runs on input ``x``: ``'reference'``,
    ``'traced'`` (inside ``torch.compile`` / ``torch.export``), ``'cpu'``
    (NCHW-contiguous CPU tensors under ``'fast'``) or ``'device'``."""
    if _impl == 'reference':
        return 'reference'
    if torch.compiler.is_compiling():
        return 'traced'
    if _impl == 'fast' and x.device.type == 'cpu' and x.is_contiguous():
        return 'cpu'
    return 'device'


@contextmanager
def use_impl(impl: str):
    """:func:`set_impl` for a ``with`` block, restoring the previous choice.

    Args:
        impl (str): ``'fast'``, ``'device'`` or ``'reference'``.
    """
    previous = _impl
    set_impl(impl)
    try:
        yield
    finally:
        set_impl(previous)
