"""Luminance boost: exact gain, kept hue, auto choices hitting their targets, no NaN/Inf ever."""
from __future__ import annotations

import math

import numpy as np
import pytest

import pyops
from pyops.color import luminance, srgb_encode
from pyops.ops import boost as tone


def _scene(seed=0, top=0.1):
    rng = np.random.default_rng(seed)
    base = rng.random((120, 160, 1)).astype(np.float32) * top
    tint = rng.random((120, 160, 3)).astype(np.float32) * 0.8 + 0.2
    return base * tint


def _chroma(img):
    y = luminance(img)[..., None]
    return img / np.where(y > 0, y, 1)


@pytest.mark.parametrize("ev", [-1.0, 0.5, 1.0, 2.0, 3.3])
def test_gain_hits_the_ev_asked_below_the_shoulder(ev):
    x = _scene(top=0.05)
    out, info = pyops.run("boost", x, ev=ev, return_info=True)
    below = x.max(axis=-1) * 2**ev <= tone.KNEE
    assert below.mean() > 0.5
    ratio = out[below] / x[below]
    np.testing.assert_allclose(ratio, 2.0**ev, rtol=1e-5)
    assert info["ev"] == ev


@pytest.mark.parametrize("method", ["gain", "power", "auto_gamma", "equalize", "clahe"])
@pytest.mark.parametrize("highlights", ["rolloff", "clip"])
def test_every_method_keeps_the_chroma_ratios(method, highlights):
    x = _scene(seed=1, top=0.6)
    out = pyops.run("boost", x, method=method, highlights=highlights)
    ok = luminance(x) > 1e-3
    np.testing.assert_allclose(_chroma(out)[ok], _chroma(x)[ok], rtol=2e-3, atol=1e-5)
    assert out.max() <= 1.0 + 1e-6


def test_rolloff_is_monotonic_never_reaches_white_and_is_smooth_at_the_knee():
    m = np.linspace(0, 4, 200001)  # up to 4× white: +2 EV over the top, still distinguishable
    y = tone.shoulder(m, "rolloff")
    assert np.all(np.diff(y) > 0) and y.max() < 1.0
    assert tone.shoulder(np.array([1e300]), "rolloff")[0] <= 1.0
    assert np.all(y[m <= tone.KNEE] == m[m <= tone.KNEE])
    slope = (tone.shoulder(np.array([tone.KNEE + 1e-6]), "rolloff")[0] - tone.KNEE) / 1e-6
    assert slope == pytest.approx(1.0, abs=1e-4)
    out = pyops.run("boost", np.full((4, 4, 3), 0.5, np.float32), ev=1)  # 1.0 after gain: rolled off
    assert out.max() == pytest.approx(tone.KNEE + (1 - tone.KNEE) * (1 - math.exp(-1)), rel=1e-6)


def test_auto_ev_puts_the_median_at_middle_grey_and_reports_it():
    x = _scene(seed=2, top=0.02)
    out, info = pyops.run("boost", x, return_info=True)
    assert float(np.median(luminance(out))) == pytest.approx(tone.MIDDLE_GREY, rel=0.02)
    med = float(np.median(luminance(x)))
    assert info["ev"] == pytest.approx(math.log2(tone.MIDDLE_GREY / med), abs=1e-3)


def test_power_lifts_the_median_by_ev_and_keeps_white():
    x = _scene(seed=3, top=0.5)
    x[0, 0] = 1.0
    out, info = pyops.run("boost", x, method="power", ev=1.0, highlights="clip", return_info=True)
    y0, y1 = luminance(x), luminance(out)
    med = np.median(y0[(y0 > 0) & (y0 < 1)])
    i = np.argmin(np.abs(y0 - med))
    assert y1.flat[i] / y0.flat[i] == pytest.approx(2.0, rel=0.02)
    assert y1[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert 0 < info["exponent"] < 1


def test_auto_gamma_brings_mean_lightness_to_half():
    x = _scene(seed=4, top=0.05)
    out, info = pyops.run("boost", x, method="auto_gamma", return_info=True)
    assert float(srgb_encode(luminance(out)).mean()) == pytest.approx(0.5, abs=0.03)
    assert info["gamma"] < 1


def test_equalize_makes_lightness_uniform():
    x = _scene(seed=5, top=0.3)
    out = pyops.run("boost", x, method="equalize", highlights="clip")
    lum = srgb_encode(luminance(out))
    hist, _ = np.histogram(lum, bins=10, range=(0, 1))
    assert hist.min() > 0.7 * hist.mean() and hist.max() < 1.3 * hist.mean()


def test_clahe_raises_local_contrast_of_a_flat_dark_image():
    x = _scene(seed=6, top=0.03)
    out = pyops.run("boost", x, method="clahe")
    assert srgb_encode(luminance(out)).std() > 2 * srgb_encode(luminance(x)).std()


@pytest.mark.parametrize("method", ["gain", "power", "auto_gamma", "equalize", "clahe"])
def test_no_nan_or_inf_for_zeros_negatives_and_huge_values(method):
    x = np.zeros((16, 16, 3), np.float32)
    x[0] = -1.0
    x[1] = 1e30
    x[2, 0] = np.inf
    x[2, 1] = np.nan
    x[3] = np.float32(3.4e38)
    x[4:] = _scene(seed=7)[:12, :16]
    out = pyops.run("boost", x, method=method)
    assert np.all(np.isfinite(out)) and out.max() <= 1.0
    assert np.all(pyops.run("boost", np.zeros((4, 4, 3), np.float32), method=method) == 0)


def test_grey_images_are_boosted_too():
    x = _scene(seed=8)[..., 1]
    out = pyops.run("boost", x, ev=1.0)
    assert out.shape == x.shape
    np.testing.assert_allclose(out[x < 0.3], 2 * x[x < 0.3], rtol=1e-5)


def test_ev_is_refused_for_methods_that_choose_their_own_curve():
    with pytest.raises(pyops.ParamError, match="ev is used by the gain and power methods only"):
        pyops.run("boost", _scene(), method="equalize", ev=1.0)


def test_rolloff_output_stays_below_white_in_float32():
    """Issue 10 #13: 1 − e^−x of the shoulder rounds to 1.0 in float32 for bright pixels (and so to 65535)."""
    x = np.array([[[3.0, 1.0, 0.5], [40.0, 40.0, 40.0], [0.5, 0.25, 0.1]]], np.float32)
    out = tone.gain(x, 1.0, "rolloff")
    assert out.max() < 1.0 and out.dtype == np.float32
    assert out[0, 0, 0] > out[0, 0, 1] > out[0, 0, 2]  # hue kept
    assert tone.gain(x, 1.0, "clip").max() == 1.0  # a hard clip does reach white
