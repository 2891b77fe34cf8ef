"""Argument checks shared by the bricks, backbones and hooks.

Each raises a ``ValueError`` that names the class (``owner``) and the
argument at fault, so a bad config value is found from the message alone.
"""
import numbers

__all__ = ['is_int', 'check_int', 'check_probability', 'check_maps']


def is_int(value) -> bool:
    """Whether ``value`` is an integer (Python or numpy) and not a bool,
    which Python counts as an int: ``groups=True`` is a config mistake."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner: str, name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= ``minimum``.

    Args:
        owner (str): The class or function taking the argument, e.g.
            ``'SAR'``.
        name (str): The argument, e.g. ``'groups'``.
        value: The value given.
        minimum (int): The smallest allowed value. Defaults to 1.

    Raises:
        ValueError: ``value`` is not an integer (a bool is not) or is below
            ``minimum``.
    """
    if not is_int(value) or value < minimum:
        wanted = 'a positive int' if minimum == 1 else f'an int >= {minimum}'
        raise ValueError(f'{owner}: {name} must be {wanted}, got {value!r}')
    return int(value)


def check_probability(owner: str,
                      name: str,
                      value,
                      include_one: bool = False) -> float:
    """Return ``value`` as a ``float`` if it is a probability in [0, 1).

    Args:
        owner (str): The class or function taking the argument.
        name (str): The argument.
        value: The value given.
        include_one (bool): Allow 1, i.e. check [0, 1]. Defaults to False.

    Raises:
        ValueError: ``value`` is not a real number (a bool is not) or is out
            of range.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool) \
            and 0 <= value and (value < 1 or include_one and value == 1):
        return float(value)
    interval = '[0, 1]' if include_one else '[0, 1)'
    raise ValueError(f'{owner}: {name} must be a probability in {interval}, '
                     f'got {value!r}')


def check_maps(owner: str, x, channels: int, batch: str = 'B') -> None:
    """Refuse an input that is not a batch of ``channels``-channel maps,
    ``(batch, channels, H, W)``, naming the shape expected and the one
    given.

    Args:
        owner (str): The module, e.g. ``'DyReLU'``.
        x (Tensor): The input.
        channels (int): The channels the module was built for.
        batch (str): The batch axis's letter in the message. Defaults to
            'B'.
    """
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f'{owner} expects input ({batch}, {channels}, H, W),'
                         f' got {tuple(x.shape)}')
