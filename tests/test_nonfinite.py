"""Non-finite input (issue 10 #1): every operator treats NaN and ±inf pixels as missing data, fills them from
their nearest finite neighbours and says so in info["notes"], through pyops.run and process_file alike; an
image with no finite value is refused with one line."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

import pyops
from pyops.process import process_file


def _smooth(shape, seed=0) -> np.ndarray:
    """A smooth positive test image (neighbours nearly equal, so a filled pixel is close to the true one)."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.random(shape), sigma=(4, 4, 0)[: len(shape)])
    return (0.2 + 0.6 * (x - x.min()) / np.ptp(x)).astype(np.float32)


def _filled_note(info) -> str:
    return next(n for n in info["notes"] if "non-finite" in n)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_deconvolve_with_one_bad_pixel_is_finite_and_close_to_the_clean_run(bad):
    g = _smooth((64, 64))
    ref = pyops.run("deconvolve", g, iterations=5)
    g[5, 5] = bad
    out, info = pyops.run("deconvolve", g, iterations=5, return_info=True)
    assert np.isfinite(out).all() and out.max() > 0.5
    assert np.abs(out - ref).max() < 0.05 and np.abs(out - ref).mean() < 1e-3
    assert _filled_note(info).startswith("1 non-finite")


def test_rgb_nan_in_one_channel_leaves_the_others_alone():
    g = _smooth((48, 48, 3), seed=1)
    ref = pyops.run("deconvolve", g, iterations=5)
    g[10, 20, 1] = np.nan
    out, info = pyops.run("deconvolve", g, iterations=5, return_info=True)
    assert np.isfinite(out).all()
    for c in range(3):
        assert out[..., c].max() > 0.5
        assert np.abs(out[..., c] - ref[..., c]).max() < 0.05
    assert _filled_note(info).startswith("1 non-finite")


@pytest.mark.parametrize("op,params", [("bin", {"factor": 2}), ("bin", {"factor": 2, "domain": "luminance"}),
                                       ("bin", {"factor": 1.5}), ("boost", {"ev": 1})])
def test_bin_and_boost_fill_nan_and_inf(op, params):
    g = _smooth((40, 40, 3), seed=2)
    ref = pyops.run(op, g, **params)
    g[3, 4] = (np.nan, np.inf, -np.inf)
    out, info = pyops.run(op, g, return_info=True, **params)
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.1
    assert _filled_note(info).startswith("3 non-finite")


def test_psf_estimate_with_nan_and_inf(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    rng = np.random.default_rng(3)
    g = gaussian_filter((rng.random((96, 96)) > 0.7).astype(np.float32), 1.5)
    g[10, 10], g[50, 60] = np.nan, np.inf
    k, info = pyops.run("psf_estimate", g, size=9, return_info=True)
    assert np.isfinite(k).all() and k.sum() == pytest.approx(1, abs=1e-4)
    assert _filled_note(info).startswith("2 non-finite")


def test_no_finite_pixel_is_refused_in_one_line():
    with pytest.raises(pyops.ParamError, match="^bin: the image has no finite pixel value$"):
        pyops.run("bin", np.full((8, 8), np.nan, np.float32))
    rgb = _smooth((8, 8, 3))
    rgb[..., 2] = np.inf
    with pytest.raises(pyops.ParamError, match="channel 2 of the image has no finite value"):
        pyops.run("deconvolve", rgb, iterations=2)


def test_a_float_tiff_with_nan_through_process_file_is_finite(tmp_path):
    g = _smooth((64, 64, 3), seed=4)
    g[7, 9] = np.nan
    g[30, 31, 0] = np.inf
    src = tmp_path / "nan.tif"
    tifffile.imwrite(src, g, photometric="rgb")
    out = process_file("deconvolve", {"iterations": 5}, src, tmp_path, "tif32")
    result = tifffile.imread(out.output)
    assert np.isfinite(result).all() and result[..., 0].max() > 0.5 and result[..., 1].max() > 0.5
    assert _filled_note(out.info).startswith("4 non-finite")


def test_fill_takes_the_nearest_finite_neighbour():
    """The per-region fill equals a global nearest-finite-neighbour fill (scipy's Euclidean distance
    transform) on a random 20 % of missing pixels."""
    from scipy import ndimage

    from pyops.ops.finite import fill_nonfinite

    rng = np.random.default_rng(8)
    z = rng.random((60, 70)).astype(np.float32)
    bad = rng.random(z.shape) < 0.2
    z[bad] = np.where(rng.random(bad.sum()) < 0.5, np.nan, np.inf)
    filled, n = fill_nonfinite(z)
    iy, ix = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    dist_ref = np.hypot(iy - np.arange(60)[:, None], ix - np.arange(70)[None, :])[bad]
    # the value taken sits at the nearest distance (ties may pick another pixel at the same distance)
    src = {float(v): (i, j) for (i, j), v in np.ndenumerate(np.where(bad, np.nan, z)) if np.isfinite(v)}
    got = [np.hypot(i - src[float(filled[i, j])][0], j - src[float(filled[i, j])][1]) for i, j in zip(*np.nonzero(bad))]
    assert n == bad.sum() and np.isfinite(filled).all() and np.array_equal(filled[~bad], z[~bad])
    np.testing.assert_allclose(got, dist_ref)
