import numpy as np
import pytest

from keras_sngan.validation import check_int, check_number


def test_check_int_accepts_python_and_numpy_integers():
    assert check_int("n", 3, 1) == 3
    assert check_int("n", np.int64(5), 1) == 5 and isinstance(check_int("n", np.int64(5), 1), int)


@pytest.mark.parametrize("bad", [0, -1, 1.0, True, "2", None])
def test_check_int_names_owner_parameter_bound_and_value(bad):
    with pytest.raises(ValueError, match=rf"^f: `n` must be an integer >= 1, received {bad!r}\.$".replace("(", r"\(")):
        check_int("n", bad, 1, owner="f")


def test_check_number_bounds():
    assert check_number("lr", 0.5) == 0.5
    assert check_number("w", 0, strict=False) == 0.0
    for bad in (0, -1.0, float("inf"), float("nan"), True, "x", None):
        with pytest.raises(ValueError, match=r"^`lr` must be a finite number > 0, received "):
            check_number("lr", bad)
    with pytest.raises(ValueError, match=r"^g: `w` must be a finite number >= 0, received -0.1\.$"):
        check_number("w", -0.1, strict=False, owner="g")
