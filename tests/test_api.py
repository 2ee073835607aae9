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


def test_a_psf_can_be_a_numpy_kernel_and_a_region_a_tuple(tmp_path):
    """As in scikit-image: `psf=` takes the kernel itself, `region=` a tuple; the result equals the one made
    from the same PSF named as text, and what is recorded is the kernel's size and hash (JSON, not the array)."""
    from scipy.signal import fftconvolve

    from pyops.ops.deconv import psf as psfmod

    rng = np.random.default_rng(5)
    sharp = rng.random((96, 96)).astype(np.float32)
    kernel = psfmod.motion(9, 20)
    blurred = fftconvolve(sharp, kernel, mode="same").astype(np.float32)
    out, info = pyops.run("deconvolve", blurred, psf=kernel, iterations=5, return_info=True)
    np.testing.assert_array_equal(out, pyops.run("deconvolve", blurred, psf="motion:length=9,angle=20", iterations=5))
    assert info["psf"].startswith("array 13×13 sha256:") and info["psf_sha256"] == psfmod.kernel_sha256(kernel)
    unnormalised = pyops.run("deconvolve", blurred, psf=kernel.astype(np.float64) * 7, iterations=5)
    np.testing.assert_allclose(unnormalised, out, atol=1e-6)  # normalised like every PSF
    _, est = pyops.run("psf_estimate", blurred, region=(8, 16, 80, 72), size=9, return_info=True)
    assert est["region"] == [8, 16, 80, 72]
    assert pyops.run("psf_estimate", blurred, region=np.array([8, 16, 80, 72]), size=9).shape == (9, 9)
    # the text interfaces are unchanged: the schema offers a string only
    schema = pyops.registry.get("deconvolve").params.model_json_schema()["properties"]["psf"]
    assert schema["type"] == "string" and "anyOf" not in schema


@pytest.mark.parametrize("psf,message", [
    (np.ones(3), "must be a 2-D array"),
    (np.full((3, 3), np.nan), "must be finite"),
    (-np.ones((3, 3)), "positive sum"),
    (np.ones((1003, 3)), "too large"),
])
def test_bad_numpy_kernels_are_param_errors(psf, message):
    with pytest.raises(pyops.ParamError, match=message):
        pyops.run("deconvolve", np.ones((16, 16), np.float32), psf=psf)


def test_a_bad_region_tuple_is_a_param_error():
    with pytest.raises(pyops.ParamError, match=r"four integers"):
        pyops.run("psf_estimate", np.ones((128, 128), np.float32), region=(1, 2, 3))
    with pytest.raises(pyops.ParamError, match="too small"):
        pyops.run("psf_estimate", np.ones((128, 128), np.float32), region=(0, 0, 20, 20))
