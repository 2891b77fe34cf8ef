"""The one switch between the reference and the tuned forwards of the bricks.

Every brick (:class:`SAR`, :class:`DyReLU`, :class:`DyDropBlock`,
:class:`ODConv2d`) opens its file with the forward written as the paper's
equation and keeps a CPU-tuned version of the same math in a private
``_*_kernels.py`` module beside it. Both compute the same values (the tests
compare outputs and gradients); the tuned one is the default.
"""
from contextlib import contextmanager

IMPLS = ('fast', 'reference')
_impl = 'fast'


def set_impl(impl: str) -> None:
    """Choose the forward of every DSP brick, for the whole process.

    Args:
        impl (str): ``'fast'`` (the tuned kernels, the default) or
            ``'reference'`` (the readable forward of each equation).
    """
    global _impl
    if impl not in IMPLS:
        raise ValueError(f'mmdsp.models.layers.set_impl: impl must be one of '
                         f'{IMPLS}, got {impl!r}')
    _impl = impl


def get_impl() -> str:
    """The forward the bricks use now: ``'fast'`` or ``'reference'``."""
    return _impl


@contextmanager
def use_impl(impl: str):
    """:func:`set_impl` for a ``with`` block, restoring the previous choice.

    Args:
        impl (str): ``'fast'`` or ``'reference'``.
    """
    previous = _impl
    set_impl(impl)
    try:
        yield
    finally:
        set_impl(previous)
