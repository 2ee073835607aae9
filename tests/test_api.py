"""The Python API `pyops.run` with arrays, mosaics and paths."""
from __future__ import annotations

import numpy as np
import pytest

import pyops
from pyops.io.raw import load_mosaic
from tests.conftest import KODAK_DC50, need


def test_run_accepts_a_path_a_mosaic_or_an_array():
    path = need(KODAK_DC50)
    from_path = pyops.run("bin", path, domain="bayer")
    from_mosaic, info = pyops.run("bin", load_mosaic(path), domain="bayer", return_info=True)
    np.testing.assert_array_equal(from_path, from_mosaic)
    assert info["cfa"] == "GRBG" and from_path.dtype == np.float32
    rgb = pyops.run("boost", path, ev=1.0)
    assert rgb.ndim == 3 and rgb.dtype == np.float32


def test_progress_callback_sees_the_start_and_the_end():
    seen = []
    pyops.run("bin", np.ones((8, 8, 3), np.float32), progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0


def test_cancel_through_the_progress_callback():
    def stop(fraction, message):
        raise pyops.Cancelled()

    with pytest.raises(pyops.Cancelled):
        pyops.run("boost", np.ones((8, 8, 3), np.float32), progress=stop)


@pytest.mark.parametrize("call,message", [
    (lambda: pyops.run("nope", np.zeros((4, 4))), "unknown operator 'nope'"),
    (lambda: pyops.run("bin", np.zeros((4, 4)), colour=1), "colour: unknown parameter"),
    (lambda: pyops.run("bin", np.zeros(4)), "must be H×W or H×W×C"),
    (lambda: pyops.run("bin", np.zeros((4, 4)), domain="bayer"), "work on the raw mosaic"),
    (lambda: pyops.run("twostop", np.zeros((4, 4))), "work on the raw mosaic"),
])
def test_errors_are_param_errors_with_a_reason(call, message):
    with pytest.raises(pyops.ParamError, match=message):
        call()
