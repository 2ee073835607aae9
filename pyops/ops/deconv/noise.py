"""Signal-dependent (Poisson–Gaussian) noise model of a linear image, estimated from the image itself.

Foi, Trimeche, Katkovnik & Egiazarian, "Practical Poissonian-Gaussian noise modeling and fitting for single-image
raw-data", IEEE TIP 17 (2008): the noise variance at the noise-free level y is σ²(y) = a·y + b (a: the inverse of
the electrons per unit of signal, the Poisson part; b: read noise). As in that paper, the noise is measured in the
finest wavelet detail (here the diagonal Haar band, which holds almost no signal in a blurred or smooth image and
whose coefficients have the pixels' variance), the level y by a local mean; the detail coefficients are grouped into
level sets (bins of equal count), each bin's variance is estimated robustly (MAD, Donoho & Johnstone 1994, which
rejects the edges that leak into the band), and a·y + b is fitted to the bins by non-negative weighted least squares
(weights ∝ count / σ⁴, the inverse variance of a variance estimate). Blocks touching clipped (≥ the white point) or
zero pixels are left out; data on a grid of step q (8-bit files) has at least the quantisation variance q²/12. At most 250 000 blocks per channel are used (a regular subsample of rows), so a 24 MP image takes ≈ 0.1 s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BLOCKS = 250_000
BINS = 16
MAD = 0.6745
# demosaiced noise (see `demosaiced`): the phase ratio above which an image is taken as demosaiced, and how much
# more variance its noise has at the 2–4 px scales deconvolution amplifies than the finest band shows
DEMOSAIC_PHASE = 1.15
DEMOSAIC_GAIN = 4.0
PHASE_BAND = 32  # rows per band sampled by cfa_phase_ratio (even: every band starts on the same phase)


def haar_diagonal(x: np.ndarray) -> np.ndarray:
    """The finest diagonal Haar coefficients of an H×W(×C) image, (a − b − c + d)/2 per 2×2 block: the pixels'
    noise with almost no signal (the band every noise estimate here reads)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2


@dataclass(frozen=True)
class NoiseModel:
    """σ²(y) = a·y + b per channel (arrays of length C), as the finest detail band sees it; `correlation`: how much
    more variance the noise has at the 2–4 px scales (DEMOSAIC_GAIN for demosaiced noise, 1 for white noise)."""
    a: np.ndarray
    b: np.ndarray
    correlation: float = 1.0

    def variance(self, y: np.ndarray, channel: int = 0) -> np.ndarray:
        return self.a[channel] * np.clip(y, 0, None) + self.b[channel]

    def sigma(self) -> float:
        """One σ for the whole image: √b when the model has no Poisson part, otherwise the σ at level 0.25."""
        return float(np.mean(np.sqrt(self.a * 0.25 + self.b)))

    def to_info(self) -> dict:
        return {"a": [float(v) for v in self.a], "b": [float(v) for v in self.b], "correlation": self.correlation}


def _blocks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2×2 Haar blocks of one channel on a row subsample: (diagonal detail, local mean, block min, block max)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    step = max(1, int(np.ceil((h // 2) * (w // 2) / MAX_BLOCKS)))
    rows = np.arange(0, h // 2, step)
    r0 = x[2 * rows, :w].astype(np.float64)
    r1 = x[2 * rows + 1, :w].astype(np.float64)
    a, b, c, d = r0[:, 0::2], r0[:, 1::2], r1[:, 0::2], r1[:, 1::2]
    detail = (a - b - c + d) / 2
    mean = (a + b + c + d) / 4
    # the level: the block mean smoothed along the row with its neighbours (less noisy than one block's mean)
    level = mean.copy()
    level[:, 1:-1] = (mean[:, :-2] + mean[:, 1:-1] + mean[:, 2:]) / 3
    lo = np.minimum(np.minimum(a, b), np.minimum(c, d))
    hi = np.maximum(np.maximum(a, b), np.maximum(c, d))
    return detail, level, lo, hi


def _fit(level: np.ndarray, detail: np.ndarray) -> tuple[float, float]:
    """Non-negative weighted least squares of var(detail) = a·level + b over equal-count level sets."""
    from scipy.optimize import nnls

    n = level.size
    if n < 64:
        s = float(np.median(np.abs(detail)) / MAD) if n else 0.0
        return 0.0, s * s
    k = min(BINS, n // 32)
    edges = np.quantile(level, np.linspace(0, 1, k + 1)[1:-1])
    which = np.searchsorted(edges, level)
    ys, vs, ws = [], [], []
    for i in range(k):
        sel = which == i
        m = int(sel.sum())
        if m < 16:
            continue
        s = np.median(np.abs(detail[sel])) / MAD
        v = max(s * s, 1e-14)
        ys.append(float(np.mean(level[sel])))
        vs.append(v)
        ws.append(np.sqrt(m) / v)  # sqrt of the inverse variance of the variance estimate (2v²/n)
    ys, vs, ws = np.array(ys), np.array(vs), np.array(ws)
    (a, b), _ = nnls(np.stack([ys * ws, ws], axis=1), vs * ws)
    return float(a), float(b)


def _quantisation_variance(x: np.ndarray) -> float:
    """q²/12 for data on a grid of step q (8-bit input: the MAD of a smooth region is 0, not its noise)."""
    sample = np.unique(x[:: max(1, x.shape[0] // 64), :: max(1, x.shape[1] // 64)])
    steps = np.diff(sample)
    steps = steps[steps > 1e-7]
    if steps.size < 8:
        return 0.0
    q = float(np.min(steps))
    # a grid if most steps are (near) multiples of the smallest one
    on_grid = np.mean(np.abs(steps / q - np.round(steps / q)) < 0.05)
    return q * q / 12 if on_grid > 0.9 else 0.0


def estimate(image: np.ndarray, white: float = 1.0) -> NoiseModel:
    """The Poisson–Gaussian model σ²(y) = a·y + b of each channel of a linear H×W or H×W×C image, and whether its
    noise is demosaiced (NoiseModel.correlation)."""
    x = image if image.ndim == 3 else image[..., None]
    a_s, b_s = [], []
    for c in range(x.shape[2]):
        detail, level, lo, hi = _blocks(x[..., c])
        ok = (lo > 0) & (hi < 0.98 * white) & np.isfinite(detail)
        a, b = _fit(level[ok], detail[ok])
        b = max(b, _quantisation_variance(x[..., c]))
        a_s.append(a)
        b_s.append(b)
    return NoiseModel(np.array(a_s), np.array(b_s), DEMOSAIC_GAIN if demosaiced(x) else 1.0)


def cfa_phase_ratio(image: np.ndarray) -> float:
    """How unevenly the noise falls on the four phases of the 2×2 pixel grid: per channel, the MAD of a 4-neighbour
    Laplacian on each phase, the largest over the smallest; the largest over the channels. 1 for noise that is the
    same everywhere, whatever the image's texture (generated scenes with white noise: ≤ 1.08)."""
    x = image if image.ndim == 3 else image[..., None]
    # bands of PHASE_BAND rows at even offsets, at most MAX_BLOCKS·4 pixels per channel (a 24 MP image: ≈ 0.5 s)
    n_bands = max(1, min(x.shape[0] // PHASE_BAND, 4 * MAX_BLOCKS // (PHASE_BAND * x.shape[1])))
    starts = np.linspace(0, x.shape[0] - min(PHASE_BAND, x.shape[0]), n_bands).astype(int) // 2 * 2
    ratios = [1.0]
    for c in range(x.shape[2]):
        phases = [[], [], [], []]
        for r in starts:
            v = x[r:r + PHASE_BAND, :, c].astype(np.float64)
            lap = np.abs(v[1:-1, 1:-1] - 0.25 * (v[:-2, 1:-1] + v[2:, 1:-1] + v[1:-1, :-2] + v[1:-1, 2:]))
            for i, (py, px) in enumerate(((1, 1), (1, 0), (0, 1), (0, 0))):  # lap[0, 0] is pixel (r + 1, 1)
                phases[i].append(lap[py::2, px::2].ravel())
        mads = [float(np.median(np.concatenate(p))) for p in phases]
        if min(mads) > 0:
            ratios.append(max(mads) / min(mads))
    return max(ratios)


def demosaiced(image: np.ndarray) -> bool:
    """Whether the image was developed from a Bayer mosaic. Demosaicing keeps the sensor's noise on the sites where
    a colour was measured and interpolates (averages) it on the others, so the noise differs between the phases of
    the 2×2 grid (cfa_phase_ratio: 1.33–1.50 median on mosaics developed by LibRaw's AHD as pyops develops raws,
    1.45–1.59 on the Canon raws in the test data). The interpolation also correlates the noise: the finest Haar band
    that `estimate` reads sees about a quarter of its variance (measured 3.8× on AHD-developed mosaics; the
    Canon colour checkers' flat patches 3.9–4.3×): NoiseModel.correlation is then DEMOSAIC_GAIN."""
    return min(image.shape[:2]) >= 8 and cfa_phase_ratio(image) > DEMOSAIC_PHASE
