"""Blind PSF estimation against ground truth: Levin et al. 2009 (as given and with Poisson + read noise added) and
a varied set generated here (procedural and scikit-image photos, random-walk camera-shake kernels, three noise
levels). The scoring is Levin et al.'s error ratio: SSD(deconvolved with the estimated kernel) / SSD(with the true
kernel), the same RL-TV for both, shift-invariant. bench/blind.py reports the full figures from these cases."""
from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import fftconvolve

import pyops
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv.rl import Options, deconvolve
from tests.test_deconvolve import _levin, psnr_shift_invariant

NOISE = {"none": None, "low": (10000.0, 0.0), "medium": (800.0, 2.0), "high": (200.0, 3.0)}  # peak e⁻, read e⁻
RATIO_OPTS = Options(iterations=150)  # the same RL-TV for the estimated and the true kernel
SIZE = 256


def kernel_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two kernels at their best relative shift (1 = the same shape)."""
    c = fftconvolve(a.astype(np.float64), b[::-1, ::-1].astype(np.float64), mode="full")
    return float(c.max() / np.sqrt((a.astype(np.float64) ** 2).sum() * (b.astype(np.float64) ** 2).sum()))


def add_noise(blurred: np.ndarray, level: str, seed: int) -> np.ndarray:
    """Poisson (peak electrons at 1.0) + Gaussian read noise: rng.poisson(b·peak)/peak + N(0, read/peak)."""
    if NOISE[level] is None:
        return blurred.astype(np.float32)
    peak, read = NOISE[level]
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(np.clip(blurred, 0, None) * peak) / peak + rng.normal(0, read / peak, blurred.shape)
    return noisy.astype(np.float32)


def blur(sharp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """pyops' convention (fftconvolve 'same'), the borders blurred from a reflected continuation."""
    p = k.shape[0]
    return fftconvolve(np.pad(sharp, p, mode="reflect"), k, mode="same")[p:-p, p:-p]


def shake_kernel(size: int, seed: int) -> np.ndarray:
    """A camera-shake PSF: a random-walk trajectory in the manner of Boracchi & Foi ("Modeling the performance of
    image restoration from motion blur", IEEE TIP 21, 2012) — a velocity with Gaussian perturbations, a pull back
    to the start and occasional jerks — scaled to span `size` px, rasterised with bilinear weights (exposure
    spent along the path), odd square, normalised, centred."""
    rng = np.random.default_rng(seed)
    n = 64
    pos = np.zeros(n, complex)
    v = np.exp(2j * np.pi * rng.uniform())
    anxiety, centripetal = rng.uniform(0.1, 0.4), rng.uniform(0.0, 0.01)
    for t in range(1, n):
        jerk = 1j * rng.uniform(-2, 2) if rng.uniform() < 0.03 else 0
        v = v + anxiety * (rng.normal() + 1j * rng.normal()) - centripetal * pos[t - 1]
        v *= np.exp(jerk) / max(abs(v), 1e-9)
        pos[t] = pos[t - 1] + v * rng.uniform(0.5, 1.5)  # the hand slows and speeds up
    pos = np.interp(np.linspace(0, n - 1, 20 * n), np.arange(n), pos.real) + 1j * np.interp(
        np.linspace(0, n - 1, 20 * n), np.arange(n), pos.imag)
    pos -= (pos.real.min() + pos.real.max()) / 2 + 1j * (pos.imag.min() + pos.imag.max()) / 2
    extent = max(np.ptp(pos.real), np.ptp(pos.imag), 1e-9)
    pos *= (size - 3) / extent
    k = np.zeros((size, size))
    x, y = pos.real + size // 2, pos.imag + size // 2
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), w)
    return psfmod.normalize(k).astype(np.float64)


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.transform import rescale

    x = getattr(skimage.data, name)()
    x = rgb2gray(x[..., :3]) if x.ndim == 3 else x / 255.0
    x = rescale(x, SIZE / min(x.shape), anti_aliasing=True)
    y0, x0 = (x.shape[0] - SIZE) // 2, (x.shape[1] - SIZE) // 2
    return x[y0: y0 + SIZE, x0: x0 + SIZE]


def _procedural_photo(kind: str, seed: int) -> np.ndarray:
    """Shapes (rectangles, discs, edges in every direction), text-like strokes, a cellular texture, or smooth
    gradients with a few objects — linear values in [0.05, 0.95]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    if kind == "shapes":
        img = np.full((SIZE, SIZE), rng.uniform(0.2, 0.6))
        for _ in range(40):
            cy, cx, r = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(5, 35)]
            a = rng.uniform(0, np.pi)
            u, w = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a), -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
            mask = (np.abs(u) < r) & (np.abs(w) < r / 2) if rng.uniform() < 0.5 else u * u + w * w < r * r
            img[mask] = rng.uniform(0.05, 0.95)
    elif kind == "strokes":
        img = np.full((SIZE, SIZE), 0.85)
        for row in range(12, SIZE - 16, 22):  # lines of "letters": short strokes and arcs
            x = 8.0
            while x < SIZE - 16:
                h = rng.uniform(8, 14)
                for _ in range(int(rng.integers(1, 4))):
                    t = np.linspace(0, 1, 30)
                    if rng.uniform() < 0.5:
                        px, py = x + rng.uniform(0, 8) * t, row + h * t
                    else:
                        a0 = rng.uniform(0, 2 * np.pi)
                        px, py = x + 4 + 4 * np.cos(a0 + 4 * t), row + h / 2 + h / 2 * np.sin(a0 + 4 * t)
                    for qx, qy in zip(px, py):
                        img[(xx - qx) ** 2 + (yy - qy) ** 2 < 1.6 ** 2] = 0.1
                x += rng.uniform(9, 14)
    elif kind == "cells":
        pts = rng.uniform(0, SIZE, (60, 2))
        d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
        near = np.sort(d, axis=-1)
        img = rng.uniform(0.1, 0.9, 60)[np.argmin(d, axis=-1)]
        img[np.sqrt(near[..., 1]) - np.sqrt(near[..., 0]) < 2.0] = 0.05  # dark borders between cells
        img += 0.05 * ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), 1.0)
    else:  # gradients: smooth shading with a few sharp objects
        img = 0.3 + 0.4 * (xx / SIZE) * (1 - yy / SIZE) + 0.15 * np.sin(xx / 23 + yy / 37)
        for _ in range(8):
            cy, cx, r = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(8, 30)]
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.05, 0.95)
    return np.clip(img, 0.05, 0.95)


PHOTOS = ("camera", "astronaut", "coffee", "brick", "rocket", "chelsea", "coins", "clock",
          "shapes", "strokes", "cells", "gradients")


def photo(name: str, seed: int = 0) -> np.ndarray:
    """A 256×256 grey test photo: a scikit-image sample (shipped with the wheel) or a procedural one."""
    if name in ("shapes", "strokes", "cells", "gradients"):
        return _procedural_photo(name, seed)
    return _skimage_photo(name)


def varied_case(index: int, level: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Case `index` of the varied set: (name, sharp, noisy blurred, true kernel); photo and kernel are the same at
    every noise level, kernel sizes 9–31 px."""
    name = PHOTOS[index % len(PHOTOS)]
    sharp = photo(name, seed=index)
    size = int(np.random.default_rng(1000 + index).integers(4, 16)) * 2 + 1
    k = shake_kernel(size, seed=index)
    blurred = add_noise(blur(sharp, k), level, seed=index)
    return f"{name}_k{size}", sharp.astype(np.float32), blurred, k


def levin_case(i: int, j: int, level: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    sharp, blurred, k = _levin(i, j)
    return f"im{i}_k{j}", sharp, add_noise(blurred, level, seed=10 * i + j), k


def score(sharp: np.ndarray, blurred: np.ndarray, k: np.ndarray) -> dict:
    """Blind estimate (the whole pyops.run call, timed), then Levin's error ratio and the PSNR gain of blind →
    deconvolve (defaults) over the blurred input."""
    t = time.perf_counter()
    est, info = pyops.run("psf_estimate", blurred, return_info=True)
    seconds = time.perf_counter() - t
    p_est = psnr_shift_invariant(deconvolve(blurred, est, RATIO_OPTS)[0], sharp)
    p_true = psnr_shift_invariant(deconvolve(blurred, k, RATIO_OPTS)[0], sharp)
    gain = psnr_shift_invariant(deconvolve(blurred, est, Options())[0], sharp) - psnr_shift_invariant(blurred, sharp)
    return {"ratio": float(10 ** ((p_true - p_est) / 10)), "gain_db": float(gain), "seconds": seconds,
            "correlation": kernel_correlation(est, k), "psf_shape": list(est.shape), "flagged": bool(info["notes"])}


def test_shake_kernels_are_valid_psfs_of_the_size_asked():
    for seed, size in ((0, 9), (1, 17), (2, 31)):
        k = shake_kernel(size, seed)
        assert k.shape == (size, size) and k.min() >= 0 and k.sum() == pytest.approx(1)
        ys, xs = np.nonzero(k > 1e-3 * k.max())
        assert max(np.ptp(ys), np.ptp(xs)) >= size - 4


def test_blind_estimate_finds_a_synthetic_motion_blur():
    rng = np.random.default_rng(7)
    sharp = _procedural_photo("shapes", 7)
    k = psfmod.motion(11, 30)
    blurred = (blur(sharp, k) + rng.normal(0, 0.002, sharp.shape)).astype(np.float32)
    est, info = pyops.run("psf_estimate", blurred, size=21, return_info=True)
    assert est.shape == (21, 21) and est.min() >= 0 and est.sum() == pytest.approx(1, abs=1e-5)
    assert info["notes"] == []  # found inside the search: no warning
    yy, xx = np.mgrid[:21, :21]
    assert abs((est * yy).sum() - 10) <= 1 and abs((est * xx).sum() - 10) <= 1  # centred
    assert kernel_correlation(est, k) > 0.8, info
    auto = pyops.run("psf_estimate", blurred)  # size auto: a 31 px search, cropped to what was found
    assert auto.shape[0] % 2 == 1 and 11 <= auto.shape[0] < 31 and kernel_correlation(auto, k) > 0.7


def test_a_blur_larger_than_the_search_is_reported(tmp_path):
    """A 41 px motion blur searched in 21 px: the kernel found spans the search, and the user is told (in the
    result's notes and on the CLI's stderr) that it is larger or that the estimate failed (the retry from a coarser
    start cannot fit it in either)."""
    import os

    import tifffile

    from tests.conftest import pyops_cli

    sharp = _procedural_photo("shapes", 7)
    blurred = blur(sharp, psfmod.motion(41, 30)).astype(np.float32)
    est, info = pyops.run("psf_estimate", blurred, size=21, return_info=True)
    assert len(info["notes"]) == 1 and "spans the whole 21×21 px search" in info["notes"][0]
    tifffile.imwrite(tmp_path / "long.tif", blurred)
    res = pyops_cli("psf", "estimate", tmp_path / "long.tif", "--size", "21", "--name", "long",
                    env=dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data")))
    assert res.returncode == 0 and res.stdout.startswith("saved long: 21×21 px"), res.stderr
    assert "warning: the blur found spans the whole 21×21 px search" in res.stderr


def test_s40_kernels_from_two_text_labels_and_the_automatic_region_agree():
    """The shaken Canon S40 raw: the kernels estimated (defaults) on the "Process Cyan C" and "Process Black C"
    labels and on the automatic region have the same shape. Measured (2026-11-29): correlations 0.76, 0.76 and 0.96
    (were 0.35–0.67 before the kernel step's least low-pass width). The dense paragraph at the bottom of the frame
    still gives another kernel (0.46–0.52 with the others): not asserted, listed in the README's limits."""
    from pyops.io.images import load_input
    from tests.conftest import MOTION_CRW, need
    from tests.s40 import TEXT_REGIONS

    img = load_input(need(MOTION_CRW), False)[0]
    ks = [pyops.run("psf_estimate", img, region=TEXT_REGIONS[name]) for name in ("cyan", "black")]
    ks.append(pyops.run("psf_estimate", img))
    pairs = [kernel_correlation(ks[a], ks[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(pairs) >= 0.7, pairs


LEVIN_ONE_PER_KERNEL = [(1, 1), (2, 2), (3, 3), (4, 4), (1, 5), (2, 6), (3, 7), (4, 8)]


def test_levin_blind_error_ratios_one_case_per_kernel():
    """One case per kernel, as given: most estimates deconvolve within an error ratio of 3, and none fails badly:
    on Levin's hardest image (the face of im4) the large kernels 4 and 8 first spread over the whole search (ratios
    39 and 59), and the retry from a 5 px coarsest scale finds them (measured 4.6 and 3.1; the worst of the eight
    is now im2 with kernel 6, 10.2). bench/blind.py prints the figures of all 32 at three noise levels."""
    rows = [score(*levin_case(i, j, "none")[1:]) for i, j in LEVIN_ONE_PER_KERNEL]
    ratios = [round(r["ratio"], 2) for r in rows]
    assert max(ratios) < 15, ratios
    assert sum(r < 3 for r in ratios) >= 3, ratios  # measured 4 (2026-11-29)


@pytest.mark.parametrize("level", ["medium", "high"])
@pytest.mark.parametrize("index", [0, 8])  # camera, shapes
def test_blind_deconvolution_of_noisy_shake_gains_over_the_blurred_input(index, level):
    """Generated photo, random-walk shake kernel, Poisson + read noise: blind estimate → deconvolve (defaults)
    is not below the blurred input's PSNR (the issue's gate), and the estimated kernel deconvolves within a
    bounded error ratio. Measured (2026-11-29): camera and shapes gain 3.8–6.1 dB with ratios 1.1–1.6."""
    res = score(*varied_case(index, level)[1:])
    assert res["gain_db"] > 0 and res["ratio"] < 6, res


@pytest.mark.parametrize("level", ["medium", "high"])
def test_blind_deconvolution_of_noisy_strokes_loses_little_when_the_kernel_is_missed(level):
    """A known shortfall (#11): text-like strokes with a 25 px shake at medium/high noise — the estimated kernel
    correlates only 0.27–0.29 with the truth, and the result lands within a fraction of a dB of the blurred input,
    above or below it depending on the CPU's floating-point paths (−0.7 to +0.2 dB measured on two machines), so
    the issue's gate (never below the input) is not asserted here. What is: a missed kernel costs less than
    1.5 dB and does not blow up (ratio < 6)."""
    res = score(*varied_case(9, level)[1:])
    assert res["gain_db"] > -1.5 and res["ratio"] < 6, res


def _counts(cases) -> tuple[np.ndarray, np.ndarray]:
    rows = [score(*case[1:]) for case in cases]
    return np.array([r["ratio"] for r in rows]), np.array([r["gain_db"] for r in rows])


@pytest.mark.slow
@pytest.mark.parametrize("level,lt2,lt3", [("none", 15, 20), ("medium", 16, 20)])  # measured 18/22 and 18/23
def test_levin_blind_all_32(level, lt2, lt3):
    ratios, gains = _counts(levin_case(i, j, level) for i in range(1, 5) for j in range(1, 9))
    print(level, "error ratios", np.round(ratios, 2).tolist(), "gains", np.round(gains, 2).tolist())
    assert (ratios < 2).sum() >= lt2 and (ratios < 3).sum() >= lt3, ratios


@pytest.mark.slow
@pytest.mark.parametrize("level,lt3", [("low", 12), ("medium", 12)])  # measured 15 and 15 of 24
def test_varied_blind_24(level, lt3):
    ratios, gains = _counts(varied_case(n, level) for n in range(24))
    print(level, "error ratios", np.round(ratios, 2).tolist(), "gains", np.round(gains, 2).tolist())
    assert (ratios < 3).sum() >= lt3 and np.median(gains) > 0, (ratios, gains)


def test_a_large_region_is_measured_on_its_most_detailed_window(monkeypatch):
    """A blind region above MAX_BLIND_PIXELS (lowered here: 300×300) is measured on the window of that many pixels
    with the most edges inside it, said in a note: the kernel is still found, and the region recorded is the
    window used."""
    from pyops.operators import psf_estimate

    monkeypatch.setattr(psf_estimate, "MAX_BLIND_PIXELS", 300 * 300)
    sharp = np.block([[photo("camera"), photo("shapes", seed=1)], [photo("strokes", seed=2), photo("coins")]])
    k = shake_kernel(15, seed=0)
    blurred = add_noise(blur(sharp, k), "low", seed=0)
    est, info = pyops.run("psf_estimate", blurred, region=(20, 10, 480, 460), return_info=True)
    x, y, w, h = info["region"]
    assert (w, h) == (300, 300) and 20 <= x and x + w <= 500 and 10 <= y and y + h <= 470, info["region"]
    assert info["notes"][0].startswith("the 480×460 px region was measured on its most detailed 300×300 px window")
    assert kernel_correlation(est, k) > 0.9
