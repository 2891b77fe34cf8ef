import numpy as np
import pytest

from mmdsp.utils.checks import check_int, check_probability, is_int


def test_is_int():
    assert is_int(3) and is_int(np.int64(3)) and is_int(-1)
    assert not any(map(is_int, (True, False, 3.0, '3', None)))


@pytest.mark.parametrize('value', [0, -2, 1.0, True, '4', None])
def test_check_int_names_owner_and_argument(value):
    with pytest.raises(ValueError,
                       match=r'^SAR: groups must be a positive int, got'):
        check_int('SAR', 'groups', value)


def test_check_int():
    assert check_int('SAR', 'groups', 4) == 4
    assert type(check_int('SAR', 'groups', np.int32(4))) is int
    assert check_int('X', 'size', 8, minimum=8) == 8
    with pytest.raises(ValueError, match='X: size must be an int >= 8'):
        check_int('X', 'size', 7, minimum=8)


def test_check_probability():
    assert check_probability('D', 'p', 0) == 0.0
    assert check_probability('D', 'p', np.float32(0.5)) == 0.5
    assert check_probability('D', 'p', 1, include_one=True) == 1.0
    for bad in (1, 1.5, -0.1, float('nan'), True, '0.1', None):
        with pytest.raises(ValueError,
                           match=r'D: p must be a probability in \[0, 1\)'):
            check_probability('D', 'p', bad)
    with pytest.raises(ValueError, match=r'\[0, 1\], got 1.5'):
        check_probability('D', 'p', 1.5, include_one=True)
