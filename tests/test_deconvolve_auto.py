"""Non-blind deconvolution without hand-tuning: λ and the stopping point from the image's own Poisson–Gaussian
noise model, clipped pixels out of the data term, tolerance of an imperfect kernel. The cases are generated here
(procedural scenes and scikit-image's bundled photos, linearised; Gaussian, disk and motion blurs; Poisson noise of
100 / 800 / 10 000 e⁻ at white plus 2 e⁻ read noise); bench/nonblind.py runs the full sweep with the same code."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, zoom
from scipy.signal import convolve, fftconvolve

from pyops.ops.deconv import clipped as clippedmod
from pyops.ops.deconv import noise as noisemod
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv.rl import Options, deconvolve, iterate, prepare

SIZE = 192
BORDER = 16
BLURS = {"gaussian": lambda: psfmod.gaussian(2.0), "disk": lambda: psfmod.disk(4.0),
         "motion": lambda: psfmod.motion(15, 30)}
PEAKS = (100.0, 800.0, 10000.0)
READ = 2.0
LAMBDAS = (0.0003, 0.001, 0.002, 0.004, 0.008, 0.016, 0.03)
MAX_ITER = 150


# --- scenes -----------------------------------------------------------------------------------------------------

def _linear(u8: np.ndarray) -> np.ndarray:
    """An 8-bit sRGB-ish photo as linear light, white at 0.9."""
    return 0.9 * (np.asarray(u8, np.float64) / 255) ** 2.2


def _crop(x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if min(x.shape[:2]) < SIZE:
        f = SIZE / min(x.shape[:2]) + 0.01
        x = zoom(x, (f, f) + (1,) * (x.ndim - 2), order=1)
    y0 = rng.integers(0, x.shape[0] - SIZE + 1)
    x0 = rng.integers(0, x.shape[1] - SIZE + 1)
    return x[y0:y0 + SIZE, x0:x0 + SIZE]


def _procedural(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    if kind == "discs":  # discs, a bar pattern, a gradient
        s = 0.1 + 0.3 * xx
        for _ in range(40):
            cy, cx, r = rng.random(3) * [1, 1, 0.1]
            s[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.03, 0.85)
        s[:, 120:150][((yy[:, 120:150] * 30).astype(int) % 2) == 0] = 0.8
        return s
    if kind == "city":  # rectangles with windows, a sky gradient
        s = 0.5 - 0.3 * yy
        for _ in range(25):
            y0, x0 = rng.integers(0, SIZE, 2)
            hh, ww = rng.integers(10, 80, 2)
            v = rng.uniform(0.02, 0.6)
            s[y0:y0 + hh, x0:x0 + ww] = v
            win = np.zeros((hh, ww), bool)
            win[2::6, 2::5] = True
            s[y0:y0 + hh, x0:x0 + ww][win[:s[y0:y0 + hh, x0:x0 + ww].shape[0], :s[y0:y0 + hh, x0:x0 + ww].shape[1]]] = min(v * 3, 0.9)
        return s
    if kind == "texture":  # 1/f noise (natural-image spectrum) with a few hard edges
        spec = np.fft.fft2(rng.normal(size=(SIZE, SIZE)))
        fy, fx = np.meshgrid(np.fft.fftfreq(SIZE), np.fft.fftfreq(SIZE), indexing="ij")
        t = np.real(np.fft.ifft2(spec / np.maximum(np.hypot(fy, fx), 1 / SIZE)))
        t = (t - t.min()) / (t.max() - t.min())
        s = 0.05 + 0.5 * t ** 1.5
        s[(xx + 0.3 * yy) > 0.8] *= 0.4
        return s
    if kind == "text":  # dark strokes on paper
        s = np.full((SIZE, SIZE), 0.75)
        for row in range(12, SIZE - 12, 18):
            x = 8
            while x < SIZE - 16:
                w = rng.integers(4, 10)
                s[row:row + 10, x:x + 2] = 0.05
                if rng.random() < 0.6:
                    s[row + rng.integers(0, 9), x:x + w] = 0.05
                x += w + rng.integers(2, 6)
        return gaussian_filter(s, 0.4)
    raise ValueError(kind)


SCENES = ("discs", "city", "texture", "text", "camera", "astronaut", "coffee", "coins", "moon", "brick",
          "chelsea", "rocket", "page", "gravel", "hubble_deep_field", "immunohistochemistry")
COLOUR = {"astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"}


def scene(name: str, seed: int = 0) -> np.ndarray:
    """A SIZE×SIZE linear scene (H×W or H×W×3)."""
    if name in ("discs", "city", "texture", "text"):
        return _procedural(name, seed)
    import skimage.data

    return _crop(_linear(getattr(skimage.data, name)()), seed)


def blur(sharp: np.ndarray, k: np.ndarray) -> np.ndarray:
    pad = max(k.shape)
    x = sharp if sharp.ndim == 3 else sharp[..., None]
    out = np.stack([fftconvolve(np.pad(x[..., c], pad, mode="reflect"), k, mode="same")[pad:-pad, pad:-pad]
                    for c in range(x.shape[2])], axis=-1)
    return out if sharp.ndim == 3 else out[..., 0]


def add_noise(clean: np.ndarray, peak: float, read: float = READ, seed: int = 0) -> np.ndarray:
    """Poisson noise of `peak` electrons at 1.0 plus Gaussian read noise of `read` electrons."""
    rng = np.random.default_rng(seed)
    return (rng.poisson(np.clip(clean, 0, None) * peak) / peak + rng.normal(0, read / peak, clean.shape)).astype(np.float32)


def case(name: str, blur_name: str, peak: float, seed: int = 0):
    sharp = scene(name, seed)
    k = BLURS[blur_name]()
    return sharp, add_noise(blur(sharp, k), peak, seed=seed + 17), k


def developed(rgb: np.ndarray, peak: float | None = None, seed: int = 0) -> np.ndarray:
    """`rgb` (linear, H×W×3) as a camera records and pyops develops it: sampled on an RGGB mosaic, with Poisson
    noise of `peak` electrons at white plus READ e⁻ per site (none if `peak` is None), 14-bit, developed by
    LibRaw's AHD (pyops.io.raw.develop_mosaic) — so the noise is demosaiced: spatially correlated."""
    from pyops.io.raw import develop_mosaic
    from pyops.mosaic import RawMosaic

    h, w, _ = rgb.shape
    cfa = np.array([[0, 1], [1, 2]])
    site = np.take_along_axis(rgb, np.tile(cfa, (h // 2 + 1, w // 2 + 1))[:h, :w, None], 2)[..., 0]
    if peak is not None:
        site = add_noise(site, peak, seed=seed)
    data = np.clip(np.round(np.clip(site, 0, None) * 16383), 0, 16383).astype(np.uint16)
    return develop_mosaic(RawMosaic(data=data, cfa=cfa, black=np.zeros((2, 2)), white=16383.0))[0]


def raw_case(name: str, blur_name: str, peak: float, seed: int = 0):
    """(reference, observed, kernel): the scene developed noise-free and sharp, and blurred then developed with noise."""
    sharp = scene(name, seed)
    sharp = sharp if sharp.ndim == 3 else np.repeat(sharp[..., None], 3, 2)
    k = BLURS[blur_name]()
    return developed(sharp), developed(blur(sharp, k), peak, seed + 17), k


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    b = BORDER
    d = np.asarray(x, np.float64)[b:-b, b:-b] - ref[b:-b, b:-b]
    return float(10 * np.log10(1 / np.mean(d * d)))


# --- references -------------------------------------------------------------------------------------------------

def skimage_rl_path(noisy: np.ndarray, k: np.ndarray, sharp: np.ndarray, n: int = MAX_ITER) -> list[float]:
    """PSNR after each iteration of scikit-image's restoration.richardson_lucy (its loop, per channel, clip=False:
    the same iterations as richardson_lucy(noisy, k, num_iter=i, clip=False) for every i ≤ n)."""
    x = noisy if noisy.ndim == 3 else noisy[..., None]
    u = np.full(x.shape, 0.5)
    path = []
    kk = k.astype(np.float64)
    for _ in range(n):
        for c in range(x.shape[2]):
            conv = convolve(u[..., c], kk, mode="same") + 1e-12
            u[..., c] *= convolve(x[..., c] / conv, kk[::-1, ::-1], mode="same")
        path.append(psnr(u if noisy.ndim == 3 else u[..., 0], sharp))
    return path


def pyops_path(noisy: np.ndarray, k: np.ndarray, sharp: np.ndarray, lam: float, n: int = MAX_ITER,
               white: float | None = None) -> tuple[list[float], list[float]]:
    """(PSNR, χ²/N) after each RL-TV iteration at a fixed λ (stop=none)."""
    x, clipped, model, _ = prepare(noisy, Options(white=white))
    out, chi = [], []
    for step in iterate(x, clipped, k, model, lam):
        e = step.estimate()
        out.append(psnr(e if noisy.ndim == 3 else e[..., 0], sharp))
        chi.append(step.chi2)
        if step.iteration >= n:
            return out, chi
    raise AssertionError("unreachable")


def oracle(noisy, k, sharp, lambdas=LAMBDAS, n=MAX_ITER) -> tuple[float, float, int]:
    """pyops' own best: (PSNR, λ, iterations) over λ × iteration count."""
    best = (-np.inf, 0.0, 0)
    for lam in lambdas:
        path, _ = pyops_path(noisy, k, sharp, lam, n)
        i = int(np.argmax(path))
        if path[i] > best[0]:
            best = (path[i], lam, i + 1)
    return best


# --- clipped pixels ---------------------------------------------------------------------------------------------

def night_scene(k: np.ndarray, seed: int = 5, peak: float = 20000.0):
    """Nine lamps far above white (5–40×) on a dim, smooth street, blurred by `k`, with noise, then clipped at 1 as
    a camera does. Returns (truth, observed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    truth = 0.03 + 0.05 * gaussian_filter(rng.random((SIZE, SIZE)), 12) * 8 * (yy / SIZE)
    for i in range(9):
        cy, cx = 40 + 55 * (i // 3) + rng.integers(-6, 7), 40 + 55 * (i % 3) + rng.integers(-6, 7)
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= 9] = rng.uniform(5, 40)
    return truth, np.clip(add_noise(blur(truth, k), peak, seed=seed), 0, 1)


def mixed_night(k: np.ndarray, seed: int, peak: float = 20000.0):
    """Twelve clipped lights of four kinds on the dim street of `night_scene`: ellipses at any angle, lit windows
    (1.2–4× white), specular streaks one pixel wide, one-pixel stars (60–800× white). Returns (truth, observed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    truth = 0.03 + 0.05 * gaussian_filter(rng.random((SIZE, SIZE)), 12) * 8 * (yy / SIZE)
    for i in range(12):
        cy, cx = 30 + 45 * (i // 4) + rng.integers(-6, 7), 25 + 45 * (i % 4) + rng.integers(-6, 7)
        level = rng.uniform(3, 40)
        if i % 4 == 0:
            a, b, t = rng.uniform(2, 6), rng.uniform(1, 3), rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t)
            v = (xx - cx) * np.cos(t) - (yy - cy) * np.sin(t)
            truth[(u / a) ** 2 + (v / b) ** 2 <= 1] = level
        elif i % 4 == 1:
            h, w = rng.integers(3, 12, 2)
            truth[cy:cy + h, cx:cx + w] = rng.uniform(1.2, 4)
        elif i % 4 == 2:
            t = rng.uniform(0, np.pi)
            for s in range(rng.integers(8, 20)):
                truth[int(cy + s * np.sin(t)), int(cx + s * np.cos(t))] = level
        else:
            truth[cy, cx] = 20 * level
    return truth, np.clip(add_noise(blur(truth, k), peak, seed=seed), 0, 1)


def ringing_energy(out: np.ndarray, truth: np.ndarray, clipped: np.ndarray, width: int = 12) -> float:
    """Σ (out − truth)² (both clipped at white, as seen) in the band of `width` px around the clipped areas of the
    observation, where ringing shows as dark rings and bright halos; the clipped areas themselves hold no data."""
    from scipy.ndimage import binary_dilation

    ring = binary_dilation(clipped, iterations=width) & ~binary_dilation(clipped, iterations=1)
    d = np.clip(out, 0, 1)[ring] - np.clip(truth, 0, 1)[ring]
    return float(np.sum(d * d))


# --- tests ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("peak,read,tol_a,tol_sigma", [(100.0, 2.0, 0.25, 0.06), (800.0, 2.0, 0.25, 0.06),
                                                      (10000.0, 10.0, 0.5, 0.2)])
@pytest.mark.parametrize("name", ["camera", "coffee", "moon"])
def test_noise_model_recovers_the_poisson_and_read_noise(name, peak, read, tol_a, tol_sigma):
    """Foi et al. 2008's σ²(y) = a·y + b from a blurred photo alone (the whole scikit-image sample): a
    (1/electrons) and σ at the mean level close to the truth; at low noise, texture left in the finest band
    inflates a (measured: up to +41 % on coffee's blue channel at 10 000 e⁻)."""
    import skimage.data

    clean = blur(_linear(getattr(skimage.data, name)()), psfmod.gaussian(1.5))
    model = noisemod.estimate(add_noise(clean, peak, read, seed=3))
    assert np.all(np.abs(model.a * peak - 1) < tol_a), (model.a * peak)
    y = float(clean.mean())
    true_sigma = np.sqrt(y / peak + (read / peak) ** 2)
    assert np.all(np.abs(np.sqrt(model.a * y + model.b) / true_sigma - 1) < tol_sigma), model


def test_demosaiced_noise_is_recognised():
    """noise.demosaiced: the CFA-phase signature of interpolated noise is found in mosaics developed by AHD and in a
    real raw, never in white noise however textured the scene (gravel at 10 000 e⁻, where the noise's scale
    structure alone cannot tell texture from correlated noise)."""
    from tests.conftest import RAW, need
    from pyops.io.images import load_input

    for name, peak in (("gravel", 10000.0), ("text", 10000.0), ("camera", 100.0), ("coffee", 800.0)):
        white = case(name, "motion", peak)[1]
        assert noisemod.cfa_phase_ratio(white) < 1.1 and noisemod.estimate(white).correlation == 1.0
        assert noisemod.estimate(raw_case(name, "motion", peak)[1]).correlation == noisemod.DEMOSAIC_GAIN, name
    real = load_input(need(RAW / "canon_powershot_s40__CRW_0117_scene.CRW"), False)[0]
    assert noisemod.cfa_phase_ratio(real) > 1.3


@pytest.mark.parametrize("blur_name", ["gaussian", "disk", "motion"])
@pytest.mark.parametrize("name", ["camera", "coffee", "text"])
def test_a_high_iso_raw_is_not_made_worse(name, blur_name):
    """Demosaiced noise at 100 e⁻: the finest band sees a quarter of its variance, and with λ from that the
    result fell below the input on every one of these (camera 13.0 dB against 18.8 with a disk blur); with λ from
    DEMOSAIC_GAIN× the variance it gains at least 0.3 dB (measured: text +0.6 to +1.0, camera and coffee +1.7 to
    +2.9)."""
    ref, observed, k = raw_case(name, blur_name, 100.0)
    out, info = deconvolve(observed, k, Options(iterations=150))
    assert psnr(out, ref) >= psnr(observed, ref) + 0.3, info


def test_noise_model_of_8_bit_data_has_the_quantisation_floor():
    """A smooth 8-bit image: the MAD of its finest band is 0, the model keeps the rounding's variance (1/255)²/12."""
    smooth = np.round(gaussian_filter(np.random.default_rng(1).random((128, 128)), 8) * 4 * 255 + 60) / 255
    model = noisemod.estimate(smooth.astype(np.float32))
    assert model.b[0] == pytest.approx((1 / 255) ** 2 / 12, rel=0.05), model


@pytest.mark.parametrize("blur_name", ["gaussian", "disk", "motion"])
@pytest.mark.parametrize("peak", [100.0, 800.0])
def test_auto_is_near_the_oracle_and_above_the_best_plain_skimage_rl(blur_name, peak):
    """`auto` (λ and stop from the noise model) within 0.25 dB of the best λ × iteration count, and above
    scikit-image's plain richardson_lucy at its best iteration count, on a photo it was not fitted on alone."""
    sharp, noisy, k = case("camera", blur_name, peak)
    out, info = deconvolve(noisy, k, Options(iterations=150))
    ours = psnr(out, sharp)
    best, _, _ = oracle(noisy, k, sharp)
    assert ours >= best - 0.25, (ours, best, info)
    assert ours > max(skimage_rl_path(noisy, k, sharp)), info


def test_a_smooth_photo_at_high_noise_keeps_the_smooth_start():
    """Moon at 100 e⁻: every RL-TV iteration from the start u₀ = Kᵀf adds noise and staircases (−5 dB by iteration
    35, while χ²/N only moves 1.03 → 0.99); Dey et al.'s J never falls below the start's and `auto` keeps the first
    iterate (measured 39.50 dB, scikit-image's best 39.63 at its first iteration, the old start from f 34.94)."""
    sharp, noisy, k = case("moon", "gaussian", 100.0)
    out, info = deconvolve(noisy, k, Options(iterations=150))
    assert info["iterations"] <= 3 and "objective" in info["stopped"], info
    assert psnr(out, sharp) >= max(skimage_rl_path(noisy, k, sharp, 5)) - 0.3, info
    assert psnr(out, sharp) >= psnr(noisy, sharp) + 10, info


def test_black_areas_at_low_noise_do_not_stop_rl_tv_as_diverging():
    """Hubble deep field (black sky, colour), motion blur, 10 000 e⁻: the fitted read noise is ≈ 0, so Pearson's
    χ² ran to 135 where Ku → 0 and stopped RL-TV as "diverging" at iteration 9 (36.5 dB); the Poisson–Gaussian
    deviance stays bounded (measured 41.4 dB; the oracle 42.6)."""
    sharp, noisy, k = case("hubble_deep_field", "motion", 10000.0)
    out, info = deconvolve(noisy, k, Options(iterations=150))
    assert "diverging" not in info["stopped"] and info["residual"] < 3, info
    assert psnr(out, sharp) >= 40.5, info


def test_rl_tv_is_not_stopped_by_an_overestimated_noise_level():
    """City, motion blur, 10 000 e⁻: detail left across the blur inflates the estimated noise (a ≈ 2× the truth), so
    a χ²/N ≤ 0.75 stop ended RL-TV at iteration 9 (23.3 dB); without it RL-TV runs to its convergence (measured
    25.6 dB; the oracle 26.35)."""
    sharp, noisy, k = case("city", "motion", 10000.0)
    out, info = deconvolve(noisy, k, Options(iterations=150))
    assert info["iterations"] > 100, info
    assert psnr(out, sharp) >= 25.0, info


@pytest.mark.parametrize("blur_name,method,ratio", [("gaussian", "rl_tv", 6.0), ("gaussian", "rl", 10.0),
                                                     ("motion", "rl_tv", 6.0), ("motion", "rl", 4.0),
                                                     ("disk", "rl_tv", 10.0), ("disk", "rl", 3.0)])
def test_clipped_lamps_ring_less_with_the_mask(blur_name, method, ratio):
    """Whyte et al. 2014: pixels at the white point get no data term, and each clipped core starts from the compact
    light its halo implies (clipped.py); the ringing energy around the lamps (against the truth, outside their
    clipped discs) falls by `ratio` against the same deconvolution without the mask (measured RL-TV 10.2 / 10.3 /
    21.9, RL 30.9 / 7.9 / 4.4 for Gaussian / motion / disk; before the compact-light start RL-TV 1.1 / 11.0 / 5.2)."""
    k = BLURS[blur_name]()
    truth, observed = night_scene(k)
    masked, info = deconvolve(observed, k, Options(method=method))
    unmasked, _ = deconvolve(observed, k, Options(method=method, white=1e9))
    clipped = observed >= 0.98
    assert info["clipped_pixels"] == int(clipped.sum()) > 500
    e_masked, e_plain = ringing_energy(masked, truth, clipped), ringing_energy(unmasked, truth, clipped)
    assert e_plain >= ratio * e_masked, (e_plain, e_masked)


@pytest.mark.parametrize("kernel", [psfmod.gaussian(2.0), psfmod.motion(15, 30), psfmod.disk(4.0),
                                    psfmod.moffat(4.0)], ids=["gaussian", "motion", "disk", "moffat"])
def test_the_light_of_a_clipped_star_is_found_from_its_halo(kernel):
    """A one-pixel star of 200× white, blurred and clipped to a core of 29–58 px: the compact-light start holds
    its flux within 5 % (measured 199.1–199.8), where RL's own start holds the white level only."""
    x = np.full((64, 64), 0.05)
    x[32, 32] += 200.0
    observed = np.clip(fftconvolve(x, kernel, mode="same") + np.random.default_rng(0).normal(0, 0.005, x.shape), 0, 1)
    core = observed >= 0.98
    values, where = clippedmod.light_start(observed, core, kernel, float(observed[core].min()))
    assert np.array_equal(where, core) and core.sum() > 20
    assert abs(float((values[core] - 0.05).sum()) - 200.0) < 10.0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("blur_name", ["gaussian", "disk", "motion"])
def test_clipped_lights_of_any_shape_ring_less_with_the_mask(blur_name, seed):
    """Not only round lamps: ellipses, lit windows, specular streaks and one-pixel stars (mixed_night). RL-TV with
    the mask rings at least 2.5× less than without it (measured 2.8–9.5, mean 5.0), and removes at least half of
    the blurred halo's error around the lights (measured: 10.7 at most against the input's 19.5 or more)."""
    k = BLURS[blur_name]()
    truth, observed = mixed_night(k, seed)
    clipped = observed >= 0.98
    masked, _ = deconvolve(observed, k, Options())
    unmasked, _ = deconvolve(observed, k, Options(white=1e9))
    e_masked = ringing_energy(masked, truth, clipped)
    assert ringing_energy(unmasked, truth, clipped) >= 2.5 * e_masked
    assert e_masked <= 0.5 * ringing_energy(observed, truth, clipped)


def test_a_kernel_that_does_not_fit_is_reported():
    """Astronaut at 10 000 e⁻, motion blur: the true kernel fits to the noise (χ²/N 0.89, no note); the same blur
    rotated by 90° leaves the residual far above it (measured 36) and `info` carries a note saying so."""
    sharp, noisy, k = case("astronaut", "motion", 10000.0)
    _, info = deconvolve(noisy, k, Options())
    assert info["notes"] == [], info
    _, info = deconvolve(noisy, psfmod.motion(15, 120), Options())
    assert info["residual"] > 10 and "does not match the blur" in info["notes"][0], info


def _wrong_kernel(seed: int = 0) -> np.ndarray:
    """What a blind estimate gets wrong: the motion kernel of `case` 15 % too long, with five spurious specks."""
    k = psfmod.motion(15 * 1.15, 30, size=23)
    rng = np.random.default_rng(seed)
    k[rng.integers(0, 23, 5), rng.integers(0, 23, 5)] += 0.01
    return psfmod.normalize(k)


@pytest.mark.parametrize("name,gain,sharper", [("camera", 3.0, 1.5), ("astronaut", 2.0, 0.8)])
def test_an_imperfect_kernel_raises_the_tv_weight_and_still_sharpens(name, gain, sharper):
    """With a wrong kernel the residual cannot reach the noise (χ²/N > 3 after 10 iterations) and λ rises to
    LAM_MODEL_ERROR: against the same run at LAM_MIN, `gain` dB or more (ringing and doubling are what the PSNR
    loses), and `sharper` dB above the input (measured: camera 20.10 dB, +4.1 over LAM_MIN, +2.2 over the input;
    astronaut 20.37 dB, +2.6 and +0.97)."""
    from pyops.ops.deconv import rl

    sharp, noisy, _ = case(name, "motion", 10000.0)
    k = _wrong_kernel()
    out, info = deconvolve(noisy, k, Options())
    assert info["regularization"] == rl.LAM_MODEL_ERROR, info
    fixed, _ = deconvolve(noisy, k, Options(regularization=rl.LAM_MIN))
    assert psnr(out, sharp) >= psnr(fixed, sharp) + gain, (psnr(out, sharp), psnr(fixed, sharp))
    assert psnr(out, sharp) > psnr(noisy, sharp) + sharper


@pytest.mark.slow
def test_sweep_auto_against_the_oracle_and_skimage():
    """The sweep of bench/nonblind.py on four scenes (coins, astronaut, text held out; city fitted on; 36 cases).
    The issue's gate (≥ 90 % within 0.2 dB of the oracle, never below scikit-image's best plain RL) is NOT met yet;
    this holds today's level (measured: 61 % within 0.2 dB, median gap 0.16 dB, one case 0.02 dB below
    scikit-image; before the Kᵀf start, the deviance and the (v/s)^0.8 rule: 44 %, 0.24 dB, −0.41 dB)."""
    gaps, vs_sk = [], []
    for name in ("coins", "astronaut", "text", "city"):
        for blur_name in BLURS:
            for peak in PEAKS:
                sharp, noisy, k = case(name, blur_name, peak)
                ours = psnr(deconvolve(noisy, k, Options(iterations=150))[0], sharp)
                gaps.append(oracle(noisy, k, sharp)[0] - ours)
                vs_sk.append(ours - max(skimage_rl_path(noisy, k, sharp)))
    gaps = np.array(gaps)
    assert np.mean(gaps <= 0.2) >= 0.55 and np.median(gaps) <= 0.2 and min(vs_sk) >= -0.2, (gaps.round(2),
                                                                                             np.round(vs_sk, 2))
