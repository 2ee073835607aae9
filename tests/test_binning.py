"""Binning numerics against plain numpy references (hypothesis for shapes and factors)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyops
from pyops.mosaic import RawMosaic
from pyops.ops import binning
from tests.conftest import bayer_reference, block_sum

shapes = st.tuples(st.integers(1, 70), st.integers(1, 70), st.sampled_from([None, 1, 3, 4]))


def _image(rng, h, w, c, top=0.9):
    shape = (h, w) if c is None else (h, w, c)
    return (rng.random(shape) * top).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(1, 7), st.sampled_from(["sum", "mean"]), st.integers(0, 2**32 - 1))
def test_rgb_binning_equals_numpy_reference(shape, k, mode, seed):
    h, w, c = shape
    x = _image(np.random.default_rng(seed), h, w, c)
    if min(h, w) < k:  # no complete block: refused, not an empty image
        with pytest.raises(pyops.ParamError, match="too small for factor"):
            pyops.run("bin", x, factor=k, mode=mode)
        return
    out, info = pyops.run("bin", x, factor=k, mode=mode, return_info=True)
    ref = block_sum(x, k) / (1 if mode == "sum" else k * k)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert info["ev"] == pytest.approx(2 * math.log2(k) if mode == "sum" else 0.0)


def test_odd_sizes_drop_the_incomplete_edge():
    x = np.ones((7, 9, 3), np.float32)
    out = pyops.run("bin", x, factor=2)
    assert out.shape == (3, 4, 3)
    assert np.all(out == 4.0)  # every output pixel holds exactly k² inputs
    with pytest.raises(pyops.ParamError, match="a 2×2 image is too small for factor 3"):
        pyops.run("bin", np.ones((2, 2), np.float32), factor=3)


def test_sum_2x2_is_exactly_plus_two_ev_on_linear_data():
    x = _image(np.random.default_rng(1), 400, 600, 3, top=0.2)
    out, info = pyops.run("bin", x, factor=2, return_info=True)
    assert math.log2(out.mean() / x.mean()) == pytest.approx(2.0, abs=1e-6)
    assert info["ev"] == 2.0


def test_no_overflow_and_clipped_fraction_reported():
    x = np.full((8, 8, 3), 1e37, np.float32)  # 4 × 1e37 still fits in float32
    x[0, 0] = 0.5
    out, info = pyops.run("bin", x, factor=2, return_info=True)
    assert np.all(np.isfinite(out))
    assert info["input_clipped_fraction"] == pytest.approx(63 / 64)
    assert info["clipped_fraction"] == 1.0  # every output pixel holds a clipped one


def test_luminance_domain_matches_rgb_on_clean_data_and_keeps_colour_where_clipped():
    x = _image(np.random.default_rng(2), 40, 60, 3, top=0.8)
    lum = pyops.run("bin", x, factor=2, domain="luminance")
    np.testing.assert_allclose(lum, block_sum(x, 2), rtol=2e-5)
    # a block of one colour (ratios 0.5 : 0.25 : 0.125) with one pixel whose red channel clipped
    blk = np.tile(np.array([0.4, 0.2, 0.1], np.float32), (2, 2, 1))
    blk[0, 0] = (1.0, 0.6, 0.3)
    out, info = pyops.run("bin", blk, factor=2, domain="luminance", return_info=True)
    r, g, b = out[0, 0]
    assert (g / r, b / r) == (pytest.approx(0.5, rel=1e-5), pytest.approx(0.25, rel=1e-5))
    w = np.array([0.2126, 0.7152, 0.0722])
    assert float(out[0, 0] @ w) == pytest.approx(float((blk.reshape(4, 3) @ w).sum()), rel=1e-4)
    assert info["input_clipped_fraction"] == pytest.approx(0.25)
    rgb = pyops.run("bin", blk, factor=2)[0, 0]
    assert rgb[1] / rgb[0] != pytest.approx(0.5, rel=1e-2)  # the false colour that rgb binning keeps


@settings(max_examples=30, deadline=None)
@given(st.integers(4, 60), st.integers(4, 60), st.floats(1.05, 4.0), st.integers(0, 2**32 - 1))
def test_fractional_binning_is_area_weighted(h, w, f, seed):
    x = _image(np.random.default_rng(seed), h, w, 3)
    out, info = pyops.run("bin", x, factor=f, return_info=True)
    ho, wo = int(h / f + 1e-9), int(w / f + 1e-9)
    assert out.shape == (ho, wo, 3)
    # the output integrates exactly the covered area [0, ho·f) × [0, wo·f) of the input
    covered = _covered_sum(x, ho * f, wo * f)
    np.testing.assert_allclose(out.sum(axis=(0, 1)), covered, rtol=1e-4)
    assert info["ev"] == pytest.approx(math.log2(f * f))
    flat = pyops.run("bin", np.full((h, w), 0.25, np.float32), factor=f)
    np.testing.assert_allclose(flat, 0.25 * f * f, rtol=1e-5)


def _covered_sum(x, hh, ww):
    wy = np.clip(hh - np.arange(x.shape[0]), 0, 1)
    wx = np.clip(ww - np.arange(x.shape[1]), 0, 1)
    return np.einsum("i,j,ijc->c", wy, wx, x.astype(np.float64))


def test_fractional_factor_two_equals_integer_binning():
    x = _image(np.random.default_rng(3), 31, 45, 3)
    np.testing.assert_allclose(binning.bin_fractional(x, 2.0)[0], block_sum(x, 2), rtol=1e-5)


def _mosaic(rng, h, w, pattern="RGGB", white=4095, black=(64, 60, 66, 62)):
    cfa = np.array(["RGB".index(c) for c in pattern], np.uint8).reshape(2, 2)
    data = rng.integers(0, white, size=(h, w), dtype=np.uint16)
    return RawMosaic(data=data, cfa=cfa, black=np.array(black, np.float32).reshape(2, 2), white=white,
                     xyz_to_camera=np.eye(3))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 90), st.integers(2, 90), st.integers(1, 5), st.sampled_from(["RGGB", "BGGR", "GRBG", "GBRG"]),
       st.integers(0, 2**32 - 1))
def test_bayer_binning_sums_same_colour_sites(h, w, k, pattern, seed):
    m = _mosaic(np.random.default_rng(seed), h, w, pattern, white=2600)  # 25·2600 fits 16 bits
    m = m.with_data(np.minimum(m.data, 2599).astype(np.uint16))  # nothing clipped
    out, clipped, scale = binning.bin_bayer(m, k, "sum")
    ref = bayer_reference(m.data, k)
    assert scale == 1.0 and clipped == 0.0
    np.testing.assert_array_equal(out.data, ref)
    assert out.pattern == pattern
    np.testing.assert_allclose(out.black, m.black * k * k)
    # the public API returns black-subtracted sums (and refuses a mosaic without a complete 2k×2k block)
    if min(h, w) < 2 * k:
        with pytest.raises(pyops.ParamError, match="too small for factor"):
            pyops.run("bin", m, factor=k, domain="bayer")
        return
    data = pyops.run("bin", m, factor=k, domain="bayer")
    np.testing.assert_allclose(data, ref - np.tile(m.black * k * k, (ref.shape[0] // 2, ref.shape[1] // 2)))


def test_bayer_sum_keeps_range_mean_extends_it():
    m = _mosaic(np.random.default_rng(4), 64, 64, white=1023, black=(32, 32, 32, 32))
    s, _, _ = binning.bin_bayer(m, 2, "sum")
    a, _, _ = binning.bin_bayer(m, 2, "mean")
    assert (s.white - s.black.max(), s.baseline_ev) == (1023 - 32, 2.0)  # +2 EV when developed
    assert (a.white - a.black.max(), a.baseline_ev) == (4 * (1023 - 32), 0.0)  # same exposure, no clipping


def test_bayer_site_with_a_clipped_input_is_marked_clipped():
    m = _mosaic(np.random.default_rng(5), 8, 8, white=1023)
    data = np.full((8, 8), 100, np.uint16)
    data[0, 0] = 1023  # one clipped red site in the first 4×4 block
    out, clipped, _ = binning.bin_bayer(m.with_data(data), 2, "sum")
    assert out.data[0, 0] == 4 * 1023 and out.data[0, 0] >= out.white  # saturated, not a darker red
    assert np.all(out.data.ravel()[1:] == 400)
    assert clipped == pytest.approx(1 / 16)


def test_bayer_scales_down_when_sums_exceed_16_bits():
    m = _mosaic(np.random.default_rng(6), 12, 12, white=16383, black=(512,) * 4)
    data = np.full((12, 12), 10000, np.uint16)
    out, _, scale = binning.bin_bayer(m.with_data(data), 3, "mean")
    assert scale == pytest.approx(65535 / (9 * 16383))
    assert np.all(out.data == round(9 * 10000 * scale))
    assert out.white <= 65535
