"""Richardson–Lucy deconvolution, plain and with total-variation regularisation.

- RL: Richardson, JOSA 62 (1972); Lucy, AJ 79 (1974): u ← u · Kᵀ(f / Ku).
- RL-TV: Dey et al., "Richardson–Lucy algorithm with total variation regularization for 3D confocal microscope
  deconvolution", Microsc. Res. Tech. 69 (2006): u ← u / (1 − λ·div(∇u/|∇u|)) · Kᵀ(f / Ku).
  For colour the gradient norm is collaborative (vectorial TV: |∇u| = sqrt(Σ_c |∇u_c|²)), so all channels share
  their edges and no colour fringes appear (Duran, Moeller, Sbert, Cremers, SIAM J. Imaging Sci. 9, 2016).
- Acceleration: Biggs & Andrews, Appl. Opt. 36 (1997), first-order vector extrapolation y = x + α(x − x_prev),
  α = Σ g_k·g_{k−1} / Σ g_{k−1}², g = the change the RL step made at the extrapolated point.
- Noise: the signal-dependent model σ²(y) = a·y + b of Foi et al. 2008, estimated from the image (noise.py).
- Clipped pixels (≥ 0.98 of the white point, per channel) get no data term (Whyte, Sivic & Zisserman, IJCV 110,
  2014): masked RL u ← u·Kᵀ(m·f/Ku + (1 − m)) (Kᵀ1 = 1); the mask is carried by marking them −1 in the padded
  observation, so no plane is added.
- λ (`auto`): from the noise per unit of signal and the image's contrast (auto_regularization), at least
  LAM_MIN; raised to LAM_MODEL_ERROR when after 10 iterations χ²/N is still above 3 — a residual that cannot
  reach the noise is kernel or model error, which a stronger TV keeps from ringing.
- Stopping (`auto`): the weighted discrepancy principle χ²/N = Σ (Ku − f)²/σ²(Ku) / N over the unclipped pixels
  (plain RL: ≤ 1; RL-TV: ≤ 0.75, it converges near 1), a χ² that stopped falling (plain RL < 2 %, RL-TV < 0.05 %
  over 10 iterations), a relative change below 1e-4, or divergence (χ² rose three times running to 1.5× its
  lowest). `none` runs every iteration asked for.
- Edges: reflect padding to a 2·3·5·7-smooth size, tapered (raised cosine) towards the mean so the FFT's wrap
  -around meets no step; the OTF is computed once; elementwise and TV steps are fused numba kernels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numba as nb
import numpy as np

from pyops.ops.deconv import fft as fftmod
from pyops.ops.deconv import noise as noisemod

EPS = 1e-6
TV_EPS = 1e-3  # smooths |∇u| where the image is flat
VAR_FLOOR = 1e-12
CLIP_FRACTION = 0.98  # of the white level: pixels at or above are clipped
LAM_GAIN, LAM_POWER, LAM_EDGE, LAM_MIN, LAM_MAX = 0.146, 0.766, 0.457, 1e-3, 0.05
STALL_RL, STALL_TV = 0.02, 0.0005  # χ² falling by less than this over 10 iterations: no more to gain
# after MODEL_CHECK iterations a χ²/N above MODEL_CHI2 is no noise but kernel or model error (Levin et al.'s
# photographed blurs: 5–35, the shaken S40 with its estimated kernel 3.5; generated Poisson–Gaussian cases ≤ 3):
# λ is raised to LAM_MODEL_ERROR
MODEL_CHECK, MODEL_CHI2, LAM_MODEL_ERROR = 10, 3.0, 0.003
DIVERGE = 1.5  # diverging: χ² rose 3 times running and is 1.5× its lowest
CHI2_STOP = 1.0  # plain RL: the discrepancy principle, Σ (Ku − f)²/σ²(Ku) = N
CHI2_STOP_TV = 0.75  # RL-TV: a little below N (the best iterates of the sweep lie at χ²/N ≈ 0.85–1.1; an overestimated noise level lowers it)


@nb.njit(parallel=True, cache=True, fastmath=True)
def _cmul(spec, otf, conj):
    for i in nb.prange(spec.shape[0]):
        for j in range(spec.shape[1]):
            h = otf[i, j]
            spec[i, j] *= h.conjugate() if conj else h


@nb.njit(cache=True, fastmath=True)
def _ratio_row(f, blurred, out, i, inside, c0, c1, a, b):
    s = 0.0
    n = 0
    for j in range(f.shape[1]):
        fv = f[i, j]
        if fv < 0.0:  # clipped: no data term, the ratio of a perfect fit (Whyte et al. 2014)
            out[i, j] = 1.0
            continue
        bl = blurred[i, j]
        out[i, j] = fv / max(bl, EPS)
        if inside and c0 <= j < c1:
            d = bl - fv
            s += d * d / max(a * max(bl, 0.0) + b, VAR_FLOOR)
            n += 1
    return s, n


@nb.njit(parallel=True, cache=True, fastmath=True)
def _ratio(f, blurred, out, r0, r1, c0, c1, a, b):
    """out = f / blurred (1 where f < 0 marks a clipped pixel); returns Σ (blurred − f)² / σ²(blurred) with
    σ²(y) = a·y + b, and the number of pixels summed, inside [r0:r1, c0:c1] (the image, not the padding)."""
    rows = np.zeros(f.shape[0])
    counts = np.zeros(f.shape[0], np.int64)
    for i in nb.prange(f.shape[0]):
        rows[i], counts[i] = _ratio_row(f, blurred, out, i, r0 <= i < r1, c0, c1, a, b)
    return rows.sum(), counts.sum()


@nb.njit(parallel=True, cache=True, fastmath=True)
def _add_grad_sq(u, acc):
    """acc += |∇u|² with forward differences (zero across the last row/column)."""
    h, w = u.shape
    for i in nb.prange(h):
        for j in range(w):
            gx = u[i, j + 1] - u[i, j] if j + 1 < w else 0.0
            gy = u[i + 1, j] - u[i, j] if i + 1 < h else 0.0
            acc[i, j] += gx * gx + gy * gy


@nb.njit(parallel=True, cache=True, fastmath=True)
def _update(u, corr, norm_sq, lam, out):
    """out = max(u·corr / (1 − λ·div(∇u/|∇u|)), 0) with |∇u| = sqrt(norm_sq + ε²); λ = 0 gives plain RL."""
    h, w = u.shape
    e2 = TV_EPS * TV_EPS
    for i in nb.prange(h):
        for j in range(w):
            v = u[i, j] * corr[i, j]
            if lam > 0.0:
                # div(p) = px[i,j] − px[i,j−1] + py[i,j] − py[i−1,j], p = ∇u/|∇u| (forward differences)
                px = (u[i, j + 1] - u[i, j]) / math.sqrt(norm_sq[i, j] + e2) if j + 1 < w else 0.0
                pxl = (u[i, j] - u[i, j - 1]) / math.sqrt(norm_sq[i, j - 1] + e2) if 0 < j else 0.0
                py = (u[i + 1, j] - u[i, j]) / math.sqrt(norm_sq[i, j] + e2) if i + 1 < h else 0.0
                pyu = (u[i, j] - u[i - 1, j]) / math.sqrt(norm_sq[i - 1, j] + e2) if 0 < i else 0.0
                den = 1.0 - lam * (px - pxl + py - pyu)
                v /= den if den > 0.5 else 0.5
            out[i, j] = v if v > 0.0 else 0.0


@nb.njit(cache=True, fastmath=True)
def _stats_row(new, y, cur, g, i, inside, c0, c1, with_g):
    d2 = 0.0
    n2 = 0.0
    for j in range(new.shape[1]):
        v = new[i, j]
        if with_g:
            g[i, j] = v - y[i, j]
        if inside and c0 <= j < c1:
            d = v - cur[i, j]
            d2 += d * d
            n2 += v * v
    return d2, n2


@nb.njit(parallel=True, cache=True, fastmath=True)
def _step_stats(new, y, cur, g, r0, r1, c0, c1, with_g):
    """One pass after an update: g = new − y (the step, for the extrapolation), and over the image region
    Σ (new − cur)² and Σ new² (the relative change)."""
    d2 = np.zeros(new.shape[0])
    n2 = np.zeros(new.shape[0])
    for i in nb.prange(new.shape[0]):
        d2[i], n2[i] = _stats_row(new, y, cur, g, i, r0 <= i < r1, c0, c1, with_g)
    return d2.sum(), n2.sum()


@nb.njit(parallel=True, cache=True, fastmath=True)
def _extrapolate(u, prev, alpha, out):
    """out = max(u + α(u − prev), 0)."""
    for i in nb.prange(u.shape[0]):
        for j in range(u.shape[1]):
            v = u[i, j] + alpha * (u[i, j] - prev[i, j])
            out[i, j] = v if v > 0.0 else 0.0


def noise_sigma(image: np.ndarray) -> float:
    """Robust noise σ: median absolute finest diagonal Haar coefficient / 0.6745 (mean over channels)."""
    x = image if image.ndim == 3 else image[..., None]
    d = noisemod.haar_diagonal(x.astype(np.float64))
    return float(np.mean([np.median(np.abs(d[..., c])) / 0.6745 for c in range(d.shape[2])]))


def auto_regularization(model: noisemod.NoiseModel, x: np.ndarray, valid: np.ndarray) -> float:
    """λ for RL-TV from the noise model and the image's contrast: λ = LAM_GAIN · v^LAM_POWER · s^−LAM_EDGE, with
    v = Σσ²(x)/Σx over the unclipped pixels, the noise variance per unit of signal (for pure Poisson data of g
    electrons per unit, v = 1/g; the TV weight of the Poisson MAP estimate grows with it, Dey et al. 2006), and
    s = the RMS gradient of the image less the noise's share (4σ²): a Laplacian gradient prior of scale s has the
    weight 1/s, so low-contrast textures get more. Gain and powers are a least-squares fit of log λ to the oracle λ
    of a sweep of blurs, noise levels and images (bench/nonblind.py)."""
    num = den = var = 0.0
    for c in range(x.shape[2]):
        xc = x[..., c][valid[..., c]]
        num += float(model.a[c]) * float(xc.sum()) + float(model.b[c]) * xc.size
        den += float(xc.sum())
        var += float(model.a[c]) * float(x[..., c].mean()) + float(model.b[c])
    g2 = float(np.mean(np.diff(x, axis=0)[:, :-1] ** 2 + np.diff(x, axis=1)[:-1] ** 2))
    s = math.sqrt(max(g2 - 4 * var / x.shape[2], 0.01 * g2, 1e-8))
    lam = LAM_GAIN * (num / max(den, EPS)) ** LAM_POWER * min(max(s, 1e-3), 0.1) ** -LAM_EDGE
    return float(np.clip(lam, LAM_MIN, LAM_MAX))


def white_levels(x: np.ndarray, white: float | None) -> np.ndarray:
    """The white point of each channel: `white` if given, else 1.0, or the channel's maximum when it is a
    plateau (≥ 16 pixels within 0.1 % of it, as in a raw clipped below 1 after white balance)."""
    out = []
    for c in range(x.shape[2]):
        if white is not None:
            out.append(float(white))
            continue
        top = float(x[..., c].max())
        plateau = top > 0.2 and int(np.count_nonzero(x[..., c] >= 0.999 * top)) >= 16
        out.append(min(top, 1.0) if plateau else 1.0)
    return np.array(out)


@dataclass
class Options:
    method: str = "rl_tv"
    iterations: int = 50
    regularization: float | str = "auto"
    stop: str = "auto"
    accelerate: bool = True
    backend: str = "auto"
    white: float | None = None  # clipped pixels (≥ CLIP_FRACTION of it) get no data term; None: per channel


@dataclass
class Step:
    """The state after one iteration (yielded by `iterate`)."""
    iteration: int
    chi2: float  # Σ (Ku − f)² / σ²(Ku) / N over the unclipped image pixels (1 = fits to the noise level)
    rel: float  # ‖u − u_prev‖ / ‖u‖
    estimate: Callable[[], np.ndarray]  # the current H×W×C estimate (a copy, cropped)


def prepare(image: np.ndarray, opts: Options) -> tuple[np.ndarray, np.ndarray, noisemod.NoiseModel, float]:
    """(H×W×C float32 ≥ 0, clipped mask, noise model, λ) for `opts`."""
    x = np.asarray(image, np.float32)
    x = x[..., None] if x.ndim == 2 else x
    x = np.clip(x, 0, None)
    whites = white_levels(x, opts.white)
    clipped = x >= (CLIP_FRACTION * whites).astype(np.float32)
    model = noisemod.estimate(x, float(whites.min()))
    if opts.method == "rl":
        lam = 0.0
    elif opts.regularization == "auto":
        lam = auto_regularization(model, x, ~clipped)
    else:
        lam = float(opts.regularization)
    return x, clipped, model, lam


def iterate(x: np.ndarray, clipped: np.ndarray, psf: np.ndarray, model: noisemod.NoiseModel, lam: float,
            accelerate: bool = True, backend: str = "auto", fft_info: dict | None = None):
    """Masked RL / RL-TV on an H×W×C image, without end: yields a `Step` after each iteration; a λ sent to the
    generator applies from the next iteration."""
    h, w, nc = x.shape
    kh, kw = psf.shape
    pad = (max(kh, 8), max(kw, 8))
    shape = (fftmod.good_size(h + 2 * pad[0]), fftmod.good_size(w + 2 * pad[1]))
    fft = fftmod.plan(shape, backend)
    if fft_info is not None:
        fft_info.update(fft=fft.name, fft_shape=list(shape))
    otf = fftmod.otf(psf, shape, fft)
    crop = (pad[0], pad[0] + h, pad[1], pad[1] + w)
    f, u = [], []  # observed (clipped pixels marked) and the estimate, which starts from the observed image
    for c in range(nc):
        fc = fftmod.taper_pad(x[..., c], shape, pad)
        u.append(fc.copy())
        if clipped[..., c].any():  # mark clipped pixels (and their reflections in the padding) with −1
            fc[np.pad(clipped[..., c], ((pad[0], shape[0] - h - pad[0]), (pad[1], shape[1] - w - pad[1])),
                      mode="symmetric")] = -1.0
        f.append(fc)
    prev = [None] * nc
    g_prev = [None] * nc
    g_prev2 = [None] * nc
    y_buf = [np.empty(shape, np.float32) for _ in range(nc)] if accelerate else None
    spare = [np.empty(shape, np.float32) for _ in range(nc)]  # buffers rotate: no copy per iteration
    ratio = np.empty(shape, np.float32)
    norm_sq = np.zeros(shape, np.float32)
    dummy = np.empty((1, 1), np.float32)
    it = 0
    while True:
        it += 1
        # extrapolated point (Biggs–Andrews), the same α for all channels
        alpha = 0.0
        if accelerate and it > 2:
            num = sum(float(np.vdot(g_prev[c], g_prev2[c])) for c in range(nc))
            den = sum(float(np.vdot(g_prev2[c], g_prev2[c])) for c in range(nc))
            alpha = min(max(num / den, 0.0), 0.95) if den > 0 else 0.0
        y = []
        for c in range(nc):
            if alpha == 0.0 or prev[c] is None:
                y.append(u[c])
            else:
                _extrapolate(u[c], prev[c], np.float32(alpha), y_buf[c])
                y.append(y_buf[c])
        if lam > 0:
            norm_sq.fill(0)
            for c in range(nc):
                _add_grad_sq(y[c], norm_sq)
        chi = 0.0
        n_fit = 0
        change = 0.0
        norm = 0.0
        for c in range(nc):
            spec = fft.rfft(y[c])
            _cmul(spec, otf, False)
            blurred = fft.irfft(spec)
            s, n = _ratio(f[c], blurred, ratio, *crop, float(model.a[c]), float(model.b[c]))
            chi += s
            n_fit += n
            spec = fft.rfft(ratio)
            _cmul(spec, otf, True)
            corr = fft.irfft(spec)
            new = spare[c]
            _update(y[c], corr, norm_sq, lam, new)
            g = None
            if accelerate:
                g = g_prev2[c] if g_prev2[c] is not None else np.empty(shape, np.float32)
            d2, n2 = _step_stats(new, y[c], u[c], g if g is not None else dummy, *crop, g is not None)
            change += d2
            norm += n2
            if accelerate:
                g_prev2[c], g_prev[c] = g_prev[c], g
            # rotate: the old estimate becomes prev, prev's buffer the next spare
            spare[c] = prev[c] if prev[c] is not None else np.empty(shape, np.float32)
            prev[c], u[c] = u[c], new
        cur = list(u)
        new_lam = yield Step(it, chi / max(n_fit, 1), math.sqrt(change) / max(math.sqrt(norm), EPS),
                   lambda cur=cur: np.stack([uc[crop[0]:crop[1], crop[2]:crop[3]] for uc in cur], axis=-1))
        if new_lam is not None:  # sent by the caller: go on with another λ
            lam = new_lam


def deconvolve(image: np.ndarray, psf: np.ndarray, opts: Options,
               progress: Callable[[float, str], None] | None = None) -> tuple[np.ndarray, dict]:
    """Deconvolve a linear H×W or H×W×C float image by `psf` (convolution convention). Channels share one
    collaborative TV term. Returns (float32 image, info: iterations, why it stopped, λ, noise model, FFT…)."""
    grey = np.ndim(image) == 2
    x, clipped, model, lam = prepare(image, opts)
    info: dict = {}
    history: list[float] = []
    reason, step = f"reached the maximum of {opts.iterations} iterations", None
    auto = opts.stop == "auto"
    steps = iterate(x, clipped, psf, model, lam, opts.accelerate, opts.backend, info)
    step = next(steps)
    while True:
        it, chi2 = step.iteration, step.chi2
        history.append(chi2)
        new_lam = None
        if progress:
            progress(it / opts.iterations, f"iteration {it}, residual {chi2:.3g} × noise")
        if (it == MODEL_CHECK and opts.regularization == "auto" and lam > 0 and chi2 > MODEL_CHI2
                and lam < LAM_MODEL_ERROR):
            # the residual cannot reach the noise: kernel or model error, which RL-TV meets with a stronger TV
            lam = new_lam = LAM_MODEL_ERROR
            history.clear()  # χ² rises to its new balance
        elif auto and len(history) >= 4 and history[-1] > history[-2] > history[-3] > history[-4] > 0.0 and (
                history[-1] > DIVERGE * min(history)):
            reason = f"diverging (residual rose 3 times) at iteration {it}"
            break
        elif auto and chi2 <= (CHI2_STOP_TV if lam > 0 else CHI2_STOP):
            reason = f"residual reached the noise level (χ²/N = {chi2:.3g}) at iteration {it}"
            break
        elif auto and len(history) > 10 and 0 <= history[-11] - chi2 < (STALL_TV if lam > 0 else STALL_RL) * chi2:
            stall = STALL_TV if lam > 0 else STALL_RL
            reason = f"residual stalled (less than {stall:.2%} lower over 10 iterations) at iteration {it}"
            break
        elif auto and step.rel < 1e-4:
            reason = f"converged (relative change {step.rel:.2g}) at iteration {it}"
            break
        if it >= opts.iterations:
            break
        step = steps.send(new_lam)
    out = step.estimate()
    info = {"iterations": step.iteration, "stopped": reason, "regularization": lam, "noise_sigma": model.sigma(),
            "noise_model": model.to_info(), "clipped_pixels": int(clipped.sum()), **info,
            "residual": history[-1] if history else None}
    return (out[..., 0] if grey else out), info
