"""Real camera raws from ../shared/data/raw: CFA patterns, Bayer binning, DNG round trip, SNR gain, twostop."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rawpy

import pyops
from pyops.color import luminance
from pyops.io.files import InputError
from pyops.io.images import read_image
from pyops.io.raw import develop, load_mosaic
from pyops.ops import binning
from pyops.process import process_file
from tests.conftest import (BAYER_RAWS, CANON_CHECKER, CANON_G2_CHECKER, KODAK, LG_LINEAR_DNG, RAW, bayer_reference,
                            need, pyops_cli)

RAW_SCENE = RAW / "canon_powershot_s40__CRW_0117_scene.CRW"


@pytest.mark.parametrize("path,pattern", BAYER_RAWS.items(), ids=lambda v: getattr(v, "name", v))
def test_bayer_binning_of_real_raws_keeps_the_cfa_and_sums_right(path, pattern):
    m = load_mosaic(need(path))
    assert m.pattern == pattern
    res = pyops.execute("bin", path, {"domain": "bayer"})
    out, info = res.data, res.info
    ref = bayer_reference(m.data, 2).astype(np.float64)
    ref -= np.tile(m.black * 4, (ref.shape[0] // 2, ref.shape[1] // 2))
    hot = bayer_reference((m.data >= m.white).astype(np.int64), 2) > 0
    np.testing.assert_allclose(out[~hot], ref[~hot])
    assert out.shape == (m.shape[0] // 4 * 2, m.shape[1] // 4 * 2)
    assert info["cfa"] == pattern and info["ev"] == 2.0
    assert info["input_clipped_fraction"] == pytest.approx(hot.mean())
    # the output's clipping: every site at or above the DNG's WhiteLevel (sums of bright sites included)
    assert info["clipped_fraction"] == pytest.approx((res.mosaic.data >= res.mosaic.white).mean())
    assert info["clipped_fraction"] >= info["input_clipped_fraction"]
    if info["clipped_fraction"] > info["input_clipped_fraction"]:  # sums of bright sites passed the white level
        assert any("above white" in n and "--mode mean" in n for n in info["notes"])


@pytest.mark.parametrize("path", [CANON_CHECKER, CANON_G2_CHECKER], ids=lambda p: p.name)
def test_dng_round_trip_through_rawpy(path, tmp_path):
    src = need(path)
    res = process_file("bin", {"domain": "bayer"}, src, tmp_path)
    assert res.output.suffix == ".dng" and res.info["format"] == "dng"
    m = load_mosaic(src)
    expected = bayer_reference(m.data, 2)
    with rawpy.imread(str(res.output)) as dng, rawpy.imread(str(src)) as orig:
        np.testing.assert_array_equal(dng.raw_image_visible, expected)  # the mosaic equals the sums
        assert dng.color_desc == orig.color_desc
        np.testing.assert_array_equal(dng.raw_colors_visible[:2, :2], orig.raw_colors_visible[:2, :2])
        assert list(dng.black_level_per_channel) == [4 * b for b in orig.black_level_per_channel]
        assert dng.white_level == 4 * 32 + (1023 - 32)  # sum mode: the original range, so +2 EV
        np.testing.assert_allclose(dng.rgb_xyz_matrix[:3], orig.rgb_xyz_matrix[:3], atol=1e-4)
        wb_d, wb_o = np.array(dng.camera_whitebalance[:3]), np.array(orig.camera_whitebalance[:3])
        np.testing.assert_allclose(wb_d / wb_d[1], wb_o / wb_o[1], rtol=1e-3)
        # developed normally, the binned raw is 2 EV brighter than the original (mid-tones, unclipped)
        opts = dict(gamma=(1, 1), no_auto_bright=True, use_camera_wb=True, output_bps=16, adjust_maximum_thr=0)
        a, b = dng.postprocess(**opts).astype(float), orig.postprocess(**opts).astype(float)
    b2 = b[: a.shape[0] * 2, : a.shape[1] * 2].reshape(a.shape[0], 2, a.shape[1], 2, 3).mean(axis=(1, 3))
    mid = (b2 > 2000) & (b2 < 12000)
    assert math.log2(np.median(a[mid] / b2[mid])) == pytest.approx(2.0, abs=0.1)


def _detrended_snr(a: np.ndarray) -> float:
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.c_[np.ones(h * w), yy.ravel(), xx.ravel()]
    coef, *_ = np.linalg.lstsq(design, a.ravel().astype(float), rcond=None)
    return float(a.mean() / (a.ravel() - design @ coef).std())


@pytest.mark.parametrize("path", [CANON_CHECKER, CANON_G2_CHECKER], ids=lambda p: p.name)
@pytest.mark.parametrize("site", [(0, 0), (0, 1), (1, 1)], ids=["R", "G", "B"])
def test_snr_gain_is_about_two_on_flat_patches_of_a_real_colorchecker(path, site):
    """SNR (mean / noise after removing a plane fit) of the 40 flattest 16×16 tiles of one CFA plane,
    before and after 2×2 same-colour binning: shot + read noise add in quadrature, so ×2 is expected."""
    m = load_mosaic(need(path))
    b, _, _ = binning.bin_bayer(m, 2, "sum")
    p0 = m.linear()[site[0]::2, site[1]::2]
    p1 = b.linear()[site[0]::2, site[1]::2]
    t = 16
    rows = []
    for i in range(0, p0.shape[0] // t * t, t):
        for j in range(0, p0.shape[1] // t * t, t):
            tile = p0[i:i + t, j:j + t]
            if tile.mean() > 20:
                s0 = _detrended_snr(tile)
                rows.append((s0, _detrended_snr(p1[i // 2:(i + t) // 2, j // 2:(j + t) // 2]) / s0))
    rows.sort(reverse=True)
    gains = np.array([g for _, g in rows[:40]])
    assert np.median(gains) == pytest.approx(2.0, abs=0.12)


def test_camera_without_colour_matrix_falls_back_to_a_linear_tiff(tmp_path):
    res = process_file("bin", {"domain": "bayer"}, need(KODAK), tmp_path)
    assert res.output.suffix == ".tif" and res.info["format"] == "tif16"
    assert any("instead of a DNG" in n for n in res.info["notes"])
    img = read_image(res.output).pixels
    # 2×2 same-colour binning halves the developed size; the DC120's 1.53:1 pixels are stretched to square
    assert img.shape == (976 // 2, round(848 // 2 * 1.5346), 3) and img.mean() > 0


def test_raw_without_a_mosaic_is_refused_for_bayer_work():
    with pytest.raises(InputError, match="no colour mosaic"):
        load_mosaic(need(LG_LINEAR_DNG))
    out = pyops.run("bin", LG_LINEAR_DNG, factor=2)  # the rgb domain takes it
    assert out.shape == (338 // 2, 600 // 2, 3)


@pytest.mark.parametrize("path", [CANON_CHECKER, KODAK], ids=lambda p: p.name)
def test_twostop_gives_plus_two_ev_at_half_size(path, tmp_path):
    src = need(path)
    res = process_file("twostop", {"highlights": "clip"}, src, tmp_path)
    after = read_image(res.output).pixels
    before = develop(src)
    assert abs(after.shape[0] - before.shape[0] / 2) <= 1 and abs(after.shape[1] - before.shape[1] / 2) <= 1
    h, w = min(after.shape[0], before.shape[0] // 2), min(after.shape[1], before.shape[1] // 2)
    b2 = before[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    ok = (b2.max(axis=-1) * 4 < 0.7) & (luminance(b2) > 0.005)  # below the shoulder after +2 EV
    assert ok.mean() > 0.1
    ratio = luminance(after[:h, :w])[ok] / luminance(b2)[ok]
    assert math.log2(np.median(ratio)) == pytest.approx(2.0, abs=0.05)
    assert res.info["binning_ev"] == 2.0 and res.info["cfa"] == load_mosaic(src).pattern


def test_twostop_rolloff_never_writes_white(tmp_path):
    """Issue 10 #13: `twostop X.CRW --boost gain --ev 1` wrote 4.6 % of channel values at exactly 65535."""
    import tifffile

    src = need(RAW_SCENE)
    res = process_file("twostop", {"boost": "gain", "ev": 1}, src, tmp_path)
    data = tifffile.imread(res.output)
    assert (data >= 65000).mean() > 0.01  # the shoulder is busy: many highlights rolled off near white
    assert np.count_nonzero(data == 65535) == 0  # but none reaches it
    assert res.info["clipped_fraction"] == 0.0


def test_clipped_fraction_reports_what_the_output_file_clipped(tmp_path):
    """Issue 10 #13: bin (rgb sum) of a bright image to tif16 clipped most pixels while reporting ~0."""
    import tifffile

    src = tmp_path / "bright.tif"
    x = np.random.default_rng(1).uniform(0.1, 0.6, (64, 64, 3)).astype(np.float32)
    tifffile.imwrite(src, x, photometric="rgb")
    res = process_file("bin", {"factor": 2}, src, tmp_path, "tif16")
    data = tifffile.imread(res.output)
    written = float(np.mean(np.any(data == 65535, axis=-1)))
    assert written > 0.5 and res.info["clipped_fraction"] == pytest.approx(written)
    assert res.info["input_clipped_fraction"] == 0.0
    assert any("above white" in n and "--mode mean" in n for n in res.info["notes"])


def test_twostop_on_a_demosaiced_dng_gives_advice_that_exists():
    """Issue 10 #15: the advice was `--domain rgb`, an option twostop does not have."""
    with pytest.raises(InputError, match=r"already demosaiced.*`bin --domain rgb`"):
        pyops.run("twostop", need(LG_LINEAR_DNG))
    from pyops.registry import get

    domain = {d["name"]: d for d in get("bin").describe()}["domain"]
    assert "rgb" in domain["choices"]  # the advice exists …
    assert "domain" not in {d["name"] for d in get("twostop").describe()}  # … where the old one did not


@pytest.mark.parametrize("shape,params", [((1, 1, 3), {}), ((3, 40), {"factor": 4}), ((5, 5), {"factor": 5.5})])
def test_bin_on_a_too_small_image_is_one_clear_line(shape, params):
    """Issue 10 #11: a 1×1 image gave "not enough samples for <PHOTOMETRIC.RGB: 2>"."""
    with pytest.raises(pyops.ParamError, match=r"^bin: a \d+×\d+ image is too small for factor"):
        pyops.run("bin", np.ones(shape, np.float32), **params)


def test_bin_on_a_1x1_file_exits_2(tmp_path):
    import tifffile

    src = tmp_path / "dot.tif"
    tifffile.imwrite(src, np.ones((1, 1, 3), np.uint16), photometric="rgb")
    res = pyops_cli("run", "bin", src)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "1×1 image is too small for factor 2" in res.stderr
    assert not list(tmp_path.glob("dot_pyops-*"))
