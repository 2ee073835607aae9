"""Richardson–Lucy deconvolution, plain and with total-variation regularisation.

- RL: Richardson, JOSA 62 (1972); Lucy, AJ 79 (1974): u ← u · Kᵀ(f / Ku).
- RL-TV: Dey et al., "Richardson–Lucy algorithm with total variation regularization for 3D confocal microscope
  deconvolution", Microsc. Res. Tech. 69 (2006): u ← u / (1 − λ·div(∇u/|∇u|)) · Kᵀ(f / Ku).
  For colour the gradient norm is collaborative (vectorial TV: |∇u| = sqrt(Σ_c |∇u_c|²)), so all channels share
  their edges and no colour fringes appear (Duran, Moeller, Sbert, Cremers, SIAM J. Imaging Sci. 9, 2016).
- Acceleration: Biggs & Andrews, Appl. Opt. 36 (1997), first-order vector extrapolation y = x + α(x − x_prev),
  α = Σ g_k·g_{k−1} / Σ g_{k−1}², g = the change the RL step made at the extrapolated point.
- Start: u₀ = Kᵀf, the first RL iterate from a flat start (Lucy 1974; scikit-image's start) rather than f itself:
  the smooth end of the RL path, so a noisy image is not deconvolved from its noise (at low noise the
  acceleration catches up within a few iterations).
- Noise: the signal-dependent model σ²(y) = a·y + b of Foi et al. 2008, estimated from the image (noise.py). The
  residual is measured by the Poisson–Gaussian deviance 2/a·[p·ln(p/q) − (p − q)], p = f + b/a, q = Ku + b/a
  (Bertero, Boccacci, Talenti, Zanella & Zanni, "A discrepancy principle for Poisson data", Inverse Problems 26,
  2010, with the read-noise shift of Snyder, Hammoud & White, JOSA A 10, 1993); ≈ Pearson's χ² near the fit but
  bounded where Ku → 0 in black areas (where Pearson's χ² with a fitted b ≈ 0 ran to 100 and stopped RL as
  "diverging").
- Clipped pixels (≥ 0.98 of the white point, per channel) get no data term (Whyte, Sivic & Zisserman, IJCV 110,
  2014): masked RL u ← u·Kᵀ(m·f/Ku + (1 − m)) (Kᵀ1 = 1); the mask is carried by marking them −1 in the padded
  observation, so no plane is added. Inside a clipped core the start is the compact light its halo implies
  (clipped.py), which RL could not build from the rim inwards.
- λ (`auto`): λ = LAM_GAIN·(v/s)^LAM_POWER from the noise per unit of signal v and the image's contrast s
  (auto_regularization), at least LAM_MIN, v taken NoiseModel.correlation× larger for demosaiced noise (a raw
  developed by pyops or by a raw developer: noise.demosaiced); raised to LAM_MODEL_ERROR when after 10 iterations
  χ²/N is still above MODEL_CHI2 — a residual that cannot reach the noise is kernel or model error, which a stronger TV keeps from ringing.
- Stopping (`auto`): plain RL, whose only regularisation is the iteration count, by the discrepancy principle
  χ²/N ≤ 1 (χ² the deviance over the unclipped pixels; Bertero et al. 2010). RL-TV is regularised by λ and
  converges to its minimiser near χ²/N ≈ 1, so χ² is no stopping point for it: where the noise level is
  overestimated (detail left in the finest band at low noise, e.g. across a motion blur) a χ² threshold ended it
  at a few iterations, 1–3 dB short. Both: a χ² that stopped falling (plain RL < 2 %, RL-TV < 0.05 % over 10
  iterations), a relative change below 1e-4, divergence (χ² rose three times running to 1.5× its lowest), or —
  RL-TV — the functional it descends, J(u) = Σ (Ku − f ln Ku) + λ·TV(u) (Dey et al. 2006; the data term here as
  w·deviance/2, w the variance per unit of signal), rising above J at the start without ever having gone below
  it: the iterations only add noise to the smooth start, which is then kept (a smooth photo at high noise).
  `none` runs every iteration asked for.
- Edges: reflect padding to a 2·3·5·7-smooth size, tapered (raised cosine) towards the mean so the FFT's wrap
  -around meets no step; the OTF is computed once; elementwise and TV steps are fused numba kernels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numba as nb
import numpy as np

from pyops.ops.deconv import clipped as clippedmod
from pyops.ops.deconv import fft as fftmod
from pyops.ops.deconv import noise as noisemod

EPS = 1e-6
STAT_ROWS = 512  # images taller than this sum their deviance and TV on a regular subset of rows
TV_EPS = 1e-3  # smooths |∇u| where the image is flat
VAR_FLOOR = 1e-12
CLIP_FRACTION = 0.98  # of the white level: pixels at or above are clipped
# a channel's maximum above PLATEAU_MIN with PLATEAU_PIXELS pixels within PLATEAU of it is its white level
PLATEAU_MIN, PLATEAU, PLATEAU_PIXELS = 0.2, 0.999, 16
LAM_GAIN, LAM_POWER, LAM_MIN, LAM_MAX = 0.064, 0.8, 1e-4, 0.05
STALL_RL, STALL_TV = 0.02, 0.0005  # χ² falling by less than this over 10 iterations: no more to gain
# after MODEL_CHECK iterations a χ²/N above MODEL_CHI2 is no noise but kernel or model error (with the Kᵀf start
# and the deviance: the shaken S40 with its estimated kernel 2.96; the generated Poisson–Gaussian cases of
# bench/nonblind.py ≤ 2.3): λ is raised to LAM_MODEL_ERROR
MODEL_CHECK, MODEL_CHI2, LAM_MODEL_ERROR = 10, 2.6, 0.003
OBJ_RISE = 1e-3  # RL-TV: J never 0.1 % below the start's and now 0.1 % above it: the start is the best estimate
DIVERGE = 1.5  # diverging: χ² rose 3 times running and is 1.5× its lowest
CHI2_STOP = 1.0  # plain RL: the discrepancy principle, deviance = N
# a final χ²/N above this (× NoiseModel.correlation: demosaiced noise is 4× the model's) is reported (info notes):
# a wrong kernel at low noise (bench: a motion kernel 15 % too long with specks 3.7–6.8, rotated 90° 9–36) or
# processed noise (old and phone raws 25–145); the generated cases with their true kernels ≤ 1.1, developed from a
# Bayer mosaic ≤ 6.3
RESIDUAL_NOTE = 5.0


@nb.njit(parallel=True, cache=True, fastmath=True)
def _cmul(spec, otf, conj):
    for i in nb.prange(spec.shape[0]):
        for j in range(spec.shape[1]):
            h = otf[i, j]
            spec[i, j] *= h.conjugate() if conj else h


@nb.njit(cache=True, fastmath=True)
def _deviance(fv, bl, a, b):
    """One pixel's Poisson–Gaussian deviance in units of the noise variance: 2/a·[p·ln(p/q) − (p − q)] with
    p = f + b/a, q = Ku + b/a (Bertero et al. 2010 with the read-noise shift of Snyder et al. 1993); for a = 0 the
    Gaussian (f − Ku)²/b. Both ≈ (f − Ku)²/σ²(Ku) near the fit; unlike Pearson's χ² it stays bounded where Ku → 0."""
    if a <= 0.0:
        d = bl - fv
        return d * d / max(b, VAR_FLOOR)
    beta = b / a
    p = fv + beta
    q = max(max(bl, 0.0) + beta, 1e-12)
    t = (p - q) / q
    if abs(t) < 1e-3:  # series of (1 + t)·ln(1 + t) − t, exact to O(t⁵)
        return 2.0 / a * q * t * t * (0.5 - t / 6.0 + t * t / 12.0)
    return 2.0 / a * (p * math.log(p / q) - (p - q)) if p > 0.0 else 2.0 / a * q


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
            s += _deviance(float(fv), float(bl), a, b)
            n += 1
    return s, n


@nb.njit(parallel=True, cache=True, fastmath=True)
def _ratio(f, blurred, out, r0, r1, c0, c1, a, b, stride):
    """out = f / blurred (1 where f < 0 marks a clipped pixel); returns the summed deviance (_deviance) of the
    noise model σ²(y) = a·y + b and the number of pixels summed, inside [r0:r1, c0:c1] (the image, not the padding)
    on every `stride`-th row (the logarithms cost as much as an FFT pass on a 24 MP image; a mean over 512 rows or
    more is exact enough for the stopping tests)."""
    rows = np.zeros(f.shape[0])
    counts = np.zeros(f.shape[0], np.int64)
    for i in nb.prange(f.shape[0]):
        rows[i], counts[i] = _ratio_row(f, blurred, out, i, r0 <= i < r1 and (i - r0) % stride == 0, c0, c1, a, b)
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


@nb.njit(cache=True, fastmath=True)
def _inverse_norm_row(norm_sq, i, inside, c0, c1):
    e2 = TV_EPS * TV_EPS
    t = 0.0
    for j in range(norm_sq.shape[1]):
        n = math.sqrt(norm_sq[i, j] + e2)
        if inside and c0 <= j < c1:
            t += n
        norm_sq[i, j] = 1.0 / n
    return t


@nb.njit(parallel=True, cache=True, fastmath=True)
def _inverse_norm(norm_sq, r0, r1, c0, c1, stride):
    """norm_sq ← 1/sqrt(norm_sq + ε²) in place (what the TV step divides by, once for all channels); returns
    Σ sqrt(norm_sq + ε²) over [r0:r1, c0:c1], every `stride`-th row: the (smoothed, collaborative) total variation
    of the image, on the rows `_ratio` sums."""
    rows = np.zeros(norm_sq.shape[0])
    for i in nb.prange(norm_sq.shape[0]):
        rows[i] = _inverse_norm_row(norm_sq, i, r0 <= i < r1 and (i - r0) % stride == 0, c0, c1)
    return rows.sum()


@nb.njit(cache=True, fastmath=True)
def _update_row(y, corr, inv_norm, lam, out, cur, g, g_old, i, inside, c0, c1, with_g, with_old):
    h, w = y.shape
    d2 = n2 = dot = old2 = 0.0
    for j in range(w):
        v = y[i, j] * corr[i, j]
        if lam > 0.0:
            # div(p) = px[i,j] − px[i,j−1] + py[i,j] − py[i−1,j], p = ∇y/|∇y| (forward differences)
            px = (y[i, j + 1] - y[i, j]) * inv_norm[i, j] if j + 1 < w else 0.0
            pxl = (y[i, j] - y[i, j - 1]) * inv_norm[i, j - 1] if 0 < j else 0.0
            py = (y[i + 1, j] - y[i, j]) * inv_norm[i, j] if i + 1 < h else 0.0
            pyu = (y[i, j] - y[i - 1, j]) * inv_norm[i - 1, j] if 0 < i else 0.0
            den = 1.0 - lam * (px - pxl + py - pyu)
            v /= den if den > 0.5 else 0.5
        v = v if v > 0.0 else 0.0
        out[i, j] = v
        if with_g:
            gv = v - y[i, j]
            g[i, j] = gv
            if with_old:
                o = g_old[i, j]
                dot += gv * o
                old2 += o * o
        if inside and c0 <= j < c1:
            d = v - cur[i, j]
            d2 += d * d
            n2 += v * v
    return d2, n2, dot, old2


@nb.njit(parallel=True, cache=True, fastmath=True)
def _update(y, corr, inv_norm, lam, out, cur, g, g_old, r0, r1, c0, c1, with_g, with_old):
    """The RL-TV step from the point y (the estimate `cur`, or its extrapolation), in one pass with its statistics:
    out = max(y·corr / (1 − λ·div(∇y/|∇y|)), 0), `inv_norm` = 1/|∇y| (_inverse_norm), λ = 0 giving plain RL;
    g = out − y (the step, for the extrapolation; `with_g`); over [r0:r1, c0:c1] Σ (out − cur)² and Σ out² (the
    relative change), and over the plane Σ g·g_old and Σ g_old² (Biggs & Andrews' α for the next iteration;
    `with_old`)."""
    sums = np.zeros((y.shape[0], 4))
    for i in nb.prange(y.shape[0]):
        sums[i, 0], sums[i, 1], sums[i, 2], sums[i, 3] = _update_row(
            y, corr, inv_norm, lam, out, cur, g, g_old, i, r0 <= i < r1, c0, c1, with_g, with_old)
    return sums.sum(axis=0)


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


def auto_regularization(model: noisemod.NoiseModel, x: np.ndarray, valid: np.ndarray, period: int | None = None
                        ) -> float:
    """λ for RL-TV from the noise model and the image's contrast: λ = LAM_GAIN · (v/s)^LAM_POWER, with v = Σσ²(x)/Σx
    over the unclipped pixels, the noise variance per unit of signal (1/g for Poisson data of g electrons per unit),
    and s = the RMS gradient of the image less the noise's share (4σ²), both with the variance at 2–4 px scales
    (× model.correlation: 4 for demosaiced noise, whose finest band shows a quarter of it). The form is the MAP weight of Dey et al.
    2006's functional Σ (Ku − f ln Ku) + λ·TV(u) for Poisson data of gain 1/v and a Laplacian gradient prior of
    scale s (λ = v/s); the gain and the one power (< 1: the best λ of a run limited to 150 iterations grows less
    than the MAP's) are fitted on bench/nonblind.py's FITTED_ON scenes, the others held out. `period`: `x` is bands
    of that many rows from a larger image, stacked: no gradient is taken across their seams."""
    num = den = var = g2 = 0.0
    h = x.shape[0]
    seams = np.arange(period - 1, h - 1, period) if period else np.zeros(0, int)  # rows whose dy crosses a seam
    for c in range(x.shape[2]):  # a channel, and a band of rows, at a time: no image-sized temporaries
        total = float(np.sum(x[..., c], where=valid[..., c], dtype=np.float64))
        num += model.correlation * (float(model.a[c]) * total + float(model.b[c]) * np.count_nonzero(valid[..., c]))
        den += total
        var += model.correlation * (float(model.a[c]) * float(x[..., c].mean()) + float(model.b[c]))
        for r in range(0, h - 1, 512):
            band = x[r:r + 513, :, c]
            dy, dx = np.diff(band, axis=0)[:, :-1], np.diff(band, axis=1)[:-1]
            dy[seams[(seams >= r) & (seams < r + 512)] - r] = 0
            g2 += float(np.sum(dy * dy + dx * dx, dtype=np.float64))
    g2 /= x.shape[2] * max(h - 1 - len(seams), 1) * max(x.shape[1] - 1, 1)
    s = math.sqrt(max(g2 - 4 * var / x.shape[2], 0.01 * g2, 1e-8))
    lam = LAM_GAIN * (num / max(den, EPS) / min(max(s, 1e-3), 0.1)) ** LAM_POWER
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
        plateau = top > PLATEAU_MIN and int(np.count_nonzero(x[..., c] >= PLATEAU * top)) >= PLATEAU_PIXELS
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
    chi2: float  # the deviance / N over the unclipped image pixels (1 = fits to the noise level), at the point updated
    rel: float  # ‖u − u_prev‖ / ‖u‖
    objective: float  # J = Σ_c w_c·deviance_c / 2 + λ·TV at the same point (what RL-TV descends, see `iterate`)
    estimate: Callable[[], np.ndarray]  # the current H×W×C estimate (a copy, cropped)
    alpha: float = 0.0  # the Biggs–Andrews extrapolation this iteration used


def observed(image: np.ndarray) -> np.ndarray:
    """The image as the iterations take it: H×W×C float32 ≥ 0 (a copy)."""
    x = np.asarray(image, np.float32)
    return np.clip(x[..., None] if x.ndim == 2 else x, 0, None)


def clipped_mask(x: np.ndarray, whites: np.ndarray) -> np.ndarray:
    """The pixels at or above CLIP_FRACTION of their channel's white level."""
    return x >= (CLIP_FRACTION * whites).astype(np.float32)


def prepare(image: np.ndarray, opts: Options, whites: np.ndarray | None = None, period: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, noisemod.NoiseModel, float]:
    """(H×W×C float32 ≥ 0, clipped mask, noise model, λ) for `opts`; `whites`: the white levels if known (of the
    whole image, when `image` is a sample of it), else `white_levels`; `period` as for auto_regularization."""
    x = observed(image)
    whites = white_levels(x, opts.white) if whites is None else whites
    clipped = clipped_mask(x, whites)
    model = noisemod.estimate(x, float(whites.min()))
    if opts.method == "rl":
        lam = 0.0
    elif opts.regularization == "auto":
        lam = auto_regularization(model, x, ~clipped, period)
    else:
        lam = float(opts.regularization)
    return x, clipped, model, lam


def iterate(x: np.ndarray, clipped: np.ndarray, psf: np.ndarray, model: noisemod.NoiseModel, lam: float,
            accelerate: bool = True, backend: str = "auto", fft_info: dict | None = None,
            levels: Sequence[float] | None = None, alphas: Sequence[float] | None = None):
    """Masked RL / RL-TV on an H×W×C image, without end: yields a `Step` after each iteration; a λ sent to the
    generator applies from the next iteration. `levels`: what the padding fades to per channel (default: the
    channel's mean); `alphas`: the extrapolations to use instead of computing them (a tile replays its probe's)."""
    h, w, nc = x.shape
    kh, kw = psf.shape
    pad = (max(kh, 8), max(kw, 8))
    shape = (fftmod.good_size(h + 2 * pad[0]), fftmod.good_size(w + 2 * pad[1]))
    fft = fftmod.plan(shape, backend)
    if fft_info is not None:
        fft_info.update(fft=fft.name, fft_shape=list(shape))
    otf = fftmod.otf(psf, shape, fft)
    crop = (pad[0], pad[0] + h, pad[1], pad[1] + w)
    f, u = [], []  # observed (clipped pixels marked) and the estimate
    for c in range(nc):
        fc = fftmod.taper_pad(x[..., c], shape, pad, None if levels is None else levels[c])
        spec = fft.rfft(fc)  # the start u₀ = Kᵀf: RL's first iterate from a flat start (Lucy 1974; scikit-image)
        _cmul(spec, otf, True)
        u.append(np.maximum(fft.irfft(spec), 0.0).astype(np.float32))
        if clipped[..., c].any():
            # inside clipped cores, start from the light their halo implies (clipped.py)
            values, where = clippedmod.light_start(x[..., c], clipped[..., c], psf, float(x[..., c][clipped[..., c]].min()))
            u[c][crop[0]:crop[1], crop[2]:crop[3]][where] = values[where]
            # mark clipped pixels (and their reflections in the padding) with −1
            fc[np.pad(clipped[..., c], ((pad[0], shape[0] - h - pad[0]), (pad[1], shape[1] - w - pad[1])),
                      mode="symmetric")] = -1.0
        f.append(fc)
    prev = [None] * nc
    g_prev = [None] * nc  # the last step's change g, and the one before (Biggs–Andrews)
    g_prev2 = [None] * nc
    y_buf = [np.empty(shape, np.float32) for _ in range(nc)] if accelerate else None
    spare = [np.empty(shape, np.float32) for _ in range(nc)]  # buffers rotate: no copy per iteration
    spec = np.empty((shape[0], shape[1] // 2 + 1), np.complex64)  # every transform writes into these two
    work = np.empty(shape, np.float32)  # Ku, then f/Ku in place, then Kᵀ(f/Ku)
    norm_sq = np.zeros(shape, np.float32)
    # the deviance in the units of RL's Kullback–Leibler data term: w = σ²(mean)/mean, the variance per unit of
    # signal (a for Poisson data), so J = Σ w·deviance/2 + λ·TV is Dey et al.'s Σ (Ku − f ln Ku) + λ·TV up to a constant
    w = [float(model.a[c]) + float(model.b[c]) / max(float(x[..., c].mean()), EPS) for c in range(nc)]
    stride = max(1, h // STAT_ROWS)  # the deviance and TV of J on at most ~2·STAT_ROWS rows
    dummy = np.empty((1, 1), np.float32)
    dots = (0.0, 0.0)  # Σ g_prev·g_prev2 and Σ g_prev2², from the last iteration's _update
    it = 0
    while True:
        it += 1
        # extrapolated point (Biggs–Andrews), the same α for all channels
        alpha = 0.0
        if alphas is not None and it <= len(alphas):
            alpha = float(alphas[it - 1]) if accelerate else 0.0
        elif accelerate and it > 2:
            alpha = min(max(dots[0] / dots[1], 0.0), 0.95) if dots[1] > 0 else 0.0
        y = []
        for c in range(nc):
            if alpha == 0.0 or prev[c] is None:
                y.append(u[c])
            else:
                _extrapolate(u[c], prev[c], np.float32(alpha), y_buf[c])
                y.append(y_buf[c])
        tv = 0.0
        if lam > 0:
            norm_sq.fill(0)
            for c in range(nc):
                _add_grad_sq(y[c], norm_sq)
            tv = _inverse_norm(norm_sq, *crop, stride)
        chi = data = change = norm = num = den = 0.0
        n_fit = 0
        for c in range(nc):
            fft.rfft(y[c], spec)
            _cmul(spec, otf, False)
            fft.irfft(spec, work)
            s, n = _ratio(f[c], work, work, *crop, float(model.a[c]), float(model.b[c]), stride)
            chi += s
            data += w[c] * s / 2
            n_fit += n
            fft.rfft(work, spec)
            _cmul(spec, otf, True)
            fft.irfft(spec, work)
            new = spare[c]
            g = None
            if accelerate:
                g = g_prev2[c] if g_prev2[c] is not None else np.empty(shape, np.float32)
            old = g_prev[c] if accelerate and g_prev[c] is not None else None
            d2, n2, dot, old2 = _update(y[c], work, norm_sq, lam, new, u[c], dummy if g is None else g,
                                        dummy if old is None else old, *crop, g is not None, old is not None)
            change += d2
            norm += n2
            num += dot
            den += old2
            if accelerate:
                g_prev2[c], g_prev[c] = g_prev[c], g
            # rotate: the old estimate becomes prev, prev's buffer the next spare
            spare[c] = prev[c] if prev[c] is not None else np.empty(shape, np.float32)
            prev[c], u[c] = u[c], new
        dots = (num, den)
        cur = list(u)
        new_lam = yield Step(it, chi / max(n_fit, 1), math.sqrt(change) / max(math.sqrt(norm), EPS),
                             data + lam * tv,
                             lambda cur=cur: np.stack([uc[crop[0]:crop[1], crop[2]:crop[3]] for uc in cur], axis=-1),
                             alpha)
        if new_lam is not None:  # sent by the caller: go on with another λ
            lam = new_lam


def deconvolve(image: np.ndarray, psf: np.ndarray, opts: Options,
               progress: Callable[[float, str], None] | None = None) -> tuple[np.ndarray, dict]:
    """Deconvolve a linear H×W or H×W×C float image by `psf` (convolution convention). Channels share one
    collaborative TV term. Returns (float32 image, info: iterations, why it stopped, λ, noise model, FFT…)."""
    grey = np.ndim(image) == 2
    x, clipped, model, lam = prepare(image, opts)
    out, info = run(x, clipped, psf, model, lam, opts, progress)
    return (out[..., 0] if grey else out), info


def run(x: np.ndarray, clipped: np.ndarray, psf: np.ndarray, model: noisemod.NoiseModel, lam: float, opts: Options,
        progress: Callable[[float, str], None] | None = None, levels: Sequence[float] | None = None,
        alphas: Sequence[float] | None = None, record: list[float] | None = None) -> tuple[np.ndarray, dict]:
    """The iterations and their stopping rules on a prepared H×W×C image (`prepare`): (H×W×C float32, info).
    `levels` and `alphas` as for `iterate`; the extrapolations used are appended to `record`."""
    info: dict = {}
    history: list[float] = []
    reason, step = f"reached the maximum of {opts.iterations} iterations", None
    auto = opts.stop == "auto"
    steps = iterate(x, clipped, psf, model, lam, opts.accelerate, opts.backend, info, levels, alphas)
    step = next(steps)
    older = last = None  # the two steps before: J at step k is that of (the extrapolation of) step k − 1's estimate
    j_min = j_start = math.inf
    while True:
        it, chi2 = step.iteration, step.chi2
        history.append(chi2)
        if record is not None:
            record.append(step.alpha)
        new_lam = None
        if progress:
            progress(it / opts.iterations, f"iteration {it}, residual {chi2:.3g} × noise")
        if (it == MODEL_CHECK and opts.regularization == "auto" and lam > 0 and chi2 > MODEL_CHI2
                and lam < LAM_MODEL_ERROR):
            # the residual cannot reach the noise: kernel or model error, which RL-TV meets with a stronger TV
            lam = new_lam = LAM_MODEL_ERROR
            history.clear()  # χ² rises to its new balance
            j_start = math.inf  # and J is another function: the start is no reference any more
        elif (auto and lam > 0 and last is not None and j_min > (1 - OBJ_RISE) * j_start
              and step.objective > (1 + OBJ_RISE) * j_start):
            # J(step k) is J at step k − 1's estimate: keep step k − 2's, the last one not above the start's (its
            # buffers are the ones `iterate` overwrites next)
            step = older or last
            reason = (f"the RL-TV objective rose above the start's without going below it at iteration {it}: "
                      f"iteration {step.iteration} kept")
            break
        elif auto and len(history) >= 4 and history[-1] > history[-2] > history[-3] > history[-4] > 0.0 and (
                history[-1] > DIVERGE * min(history)):
            reason = f"diverging (residual rose 3 times) at iteration {it}"
            break
        elif auto and lam == 0 and chi2 <= CHI2_STOP:
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
        if last is None:
            j_start = step.objective
        j_min = min(j_min, step.objective)
        older, last = last, step
        step = steps.send(new_lam)
    out = step.estimate()
    info = {"iterations": step.iteration, "stopped": reason, "regularization": lam, "noise_sigma": model.sigma(),
            "noise_model": model.to_info(), "clipped_pixels": int(clipped.sum()), **info,
            "residual": history[-1] if history else None}
    info["notes"] = residual_notes(info["residual"], model)
    return out, info


def residual_notes(residual: float | None, model: noisemod.NoiseModel) -> list[str]:
    """A note when the final χ²/N, against the noise (÷ model.correlation), is above RESIDUAL_NOTE."""
    excess = residual / model.correlation if residual is not None else 0.0  # not the finest band's variance
    if excess <= RESIDUAL_NOTE:
        return []
    return [(f"the result still differs from the image by {excess:.3g}× its noise: the PSF does not match the blur, "
             "or the image's noise is no longer the camera's (denoised, sharpened or compressed) — check the PSF "
             "(`pyops psf show`) and look for doubled edges")]
