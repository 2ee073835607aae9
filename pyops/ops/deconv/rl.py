"""Richardson–Lucy deconvolution, plain and with total-variation regularisation.

- RL: Richardson, JOSA 62 (1972); Lucy, AJ 79 (1974): u ← u · Kᵀ(f / Ku).
- RL-TV: Dey et al., "Richardson–Lucy algorithm with total variation regularization for 3D confocal microscope
  deconvolution", Microsc. Res. Tech. 69 (2006): u ← u / (1 − λ·div(∇u/|∇u|)) · Kᵀ(f / Ku).
  For colour the gradient norm is collaborative (vectorial TV: |∇u| = sqrt(Σ_c |∇u_c|²)), so all channels share
  their edges and no colour fringes appear (Duran, Moeller, Sbert, Cremers, SIAM J. Imaging Sci. 9, 2016).
- Acceleration: Biggs & Andrews, Appl. Opt. 36 (1997), first-order vector extrapolation y = x + α(x − x_prev),
  α = Σ g_k·g_{k−1} / Σ g_{k−1}², g = the change the RL step made at the extrapolated point.
- Stopping (`auto`): the discrepancy principle (the residual Ku − f falls to the noise level σ, estimated
  robustly as the MAD of the finest diagonal Haar band / 0.6745, Donoho & Johnstone 1994), or a relative change
  below 1e-4, or (plain RL, which amplifies noise the longer it runs) a residual that fell less than 1 % over 10
  iterations; or on divergence (the residual grows three times running). RL-TV keeps sharpening while its
  residual is flat, so it is not stopped on that. `none` runs every iteration asked for.
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

EPS = 1e-6
TV_EPS = 1e-3  # smooths |∇u| where the image is flat


@nb.njit(parallel=True, cache=True, fastmath=True)
def _cmul(spec, otf, conj):
    for i in nb.prange(spec.shape[0]):
        for j in range(spec.shape[1]):
            h = otf[i, j]
            spec[i, j] *= h.conjugate() if conj else h


@nb.njit(cache=True, fastmath=True)
def _ratio_row(f, blurred, out, i, inside, c0, c1):
    s = 0.0
    for j in range(f.shape[1]):
        b = max(blurred[i, j], EPS)
        out[i, j] = f[i, j] / b
        if inside and c0 <= j < c1:
            d = blurred[i, j] - f[i, j]
            s += d * d
    return s


@nb.njit(parallel=True, cache=True, fastmath=True)
def _ratio(f, blurred, out, r0, r1, c0, c1):
    """out = f / blurred; returns Σ (blurred − f)² inside [r0:r1, c0:c1] (the image, not the padding)."""
    rows = np.zeros(f.shape[0])
    for i in nb.prange(f.shape[0]):
        rows[i] = _ratio_row(f, blurred, out, i, r0 <= i < r1, c0, c1)
    return rows.sum()


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
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w].astype(np.float64)
    d = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.mean([np.median(np.abs(d[..., c])) / 0.6745 for c in range(d.shape[2])]))


def auto_regularization(sigma: float) -> float:
    """λ for RL-TV from the noise level (tuned on synthetic Poisson + read noise and on Levin et al. 2009)."""
    return float(np.clip(sigma, 5e-4, 0.02))


@dataclass
class Options:
    method: str = "rl_tv"
    iterations: int = 50
    regularization: float | str = "auto"
    stop: str = "auto"
    accelerate: bool = True
    backend: str = "auto"


def deconvolve(image: np.ndarray, psf: np.ndarray, opts: Options,
               progress: Callable[[float, str], None] | None = None) -> tuple[np.ndarray, dict]:
    """Deconvolve a linear H×W or H×W×C float image by `psf` (convolution convention). Channels share one
    collaborative TV term. Returns (float32 image, info: iterations, why it stopped, λ, σ, FFT backend…)."""
    x = np.asarray(image, np.float32)
    grey = x.ndim == 2
    x = x[..., None] if grey else x
    h, w, nc = x.shape
    x = np.clip(x, 0, None)
    kh, kw = psf.shape
    pad = (max(kh, 8), max(kw, 8))
    shape = (fftmod.good_size(h + 2 * pad[0]), fftmod.good_size(w + 2 * pad[1]))
    fft = fftmod.plan(shape, opts.backend)
    otf = fftmod.otf(psf, shape, fft)
    sigma = noise_sigma(x)
    lam = 0.0 if opts.method == "rl" else (auto_regularization(sigma) if opts.regularization == "auto"
                                           else float(opts.regularization))
    crop = (pad[0], pad[0] + h, pad[1], pad[1] + w)
    f = [fftmod.taper_pad(x[..., c], shape, pad) for c in range(nc)]
    u = [fc.copy() for fc in f]  # start from the blurred image
    prev = [None] * nc
    g_prev = [None] * nc
    g_prev2 = [None] * nc
    y_buf = [np.empty(shape, np.float32) for _ in range(nc)] if opts.accelerate else None
    spare = [np.empty(shape, np.float32) for _ in range(nc)]  # buffers rotate: no copy per iteration
    ratio = np.empty(shape, np.float32)
    norm_sq = np.zeros(shape, np.float32)
    dummy = np.empty((1, 1), np.float32)
    n_pix = h * w * nc
    history: list[float] = []
    reason, done = f"reached the maximum of {opts.iterations} iterations", 0
    for it in range(1, opts.iterations + 1):
        # extrapolated point (Biggs–Andrews), the same α for all channels
        alpha = 0.0
        if opts.accelerate and it > 2:
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
        ssr = 0.0
        change = 0.0
        norm = 0.0
        for c in range(nc):
            spec = fft.rfft(y[c])
            _cmul(spec, otf, False)
            blurred = fft.irfft(spec)
            ssr += _ratio(f[c], blurred, ratio, *crop)
            spec = fft.rfft(ratio)
            _cmul(spec, otf, True)
            corr = fft.irfft(spec)
            new = spare[c]
            _update(y[c], corr, norm_sq, lam, new)
            g = None
            if opts.accelerate:
                g = g_prev2[c] if g_prev2[c] is not None else np.empty(shape, np.float32)
            d2, n2 = _step_stats(new, y[c], u[c], g if g is not None else dummy, *crop, g is not None)
            change += d2
            norm += n2
            if opts.accelerate:
                g_prev2[c], g_prev[c] = g_prev[c], g
            # rotate: the old estimate becomes prev, prev's buffer the next spare
            spare[c] = prev[c] if prev[c] is not None else np.empty(shape, np.float32)
            prev[c], u[c] = u[c], new
        done = it
        rms = math.sqrt(ssr / n_pix)
        history.append(rms)
        rel = math.sqrt(change) / max(math.sqrt(norm), EPS)
        if progress:
            progress(it / opts.iterations, f"iteration {it}, residual {rms:.4g}")
        if opts.stop == "auto" and len(history) >= 4 and history[-1] > history[-2] > history[-3] > history[-4]:
            reason = f"diverging (residual rose 3 times) at iteration {it}"
            break
        if opts.stop == "auto" and rms <= sigma:
            reason = f"residual {rms:.4g} reached the noise level {sigma:.4g} at iteration {it}"
            break
        if opts.stop == "auto" and lam == 0.0 and len(history) > 10 and history[-11] - rms < 0.01 * rms:
            reason = f"residual stalled (less than 1 % lower over 10 iterations) at iteration {it}"
            break
        if opts.stop == "auto" and rel < 1e-4:
            reason = f"converged (relative change {rel:.2g}) at iteration {it}"
            break
    out = np.stack([uc[crop[0]:crop[1], crop[2]:crop[3]] for uc in u], axis=-1)
    info = {"iterations": done, "stopped": reason, "regularization": lam, "noise_sigma": sigma,
            "fft": fft.name, "fft_shape": list(shape), "residual": history[-1] if history else None}
    return (out[..., 0] if grey else out), info
