"""Pixel binning: trade resolution for light.

Summing k×k pixels of *linear* data multiplies the signal by k² (+log2(k²) EV) while shot and read noise,
independent from pixel to pixel, grow by k only: the SNR grows by k. This is the "Two Stop" idea done in the
right domain (linear values or same-colour sites of the raw mosaic, not gamma-encoded RGB) — see Chen et al.,
"Learning to See in the Dark" (CVPR 2018) for the raw-domain view: per-channel black level, Bayer planes.

All functions are pure: arrays in, arrays out. Incomplete blocks at the right and bottom edges are dropped
(an image of W×H binned by k gives ⌊W/k⌋×⌊H/k⌋), so every output pixel holds exactly k² inputs.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
import scipy.sparse as sp

from pyops.color import luma_weights
from pyops.mosaic import RawMosaic

CLIP_LEVEL = 1.0  # linear images: a value at or above nominal white counts as clipped


@nb.njit(parallel=True, cache=True)
def _block_sum(x, k, clip):
    h, w, c = x.shape
    ho, wo = h // k, w // k
    out = np.empty((ho, wo, c), np.float32)
    clipped = np.zeros(ho, np.int64)
    for i in nb.prange(ho):
        n = 0
        for j in range(wo):
            for ch in range(c):
                s = 0.0
                for u in range(k):
                    for v in range(k):
                        s += x[i * k + u, j * k + v, ch]
                out[i, j, ch] = s
            for u in range(k):
                for v in range(k):
                    for ch in range(c):
                        if x[i * k + u, j * k + v, ch] >= clip:
                            n += 1
                            break
        clipped[i] = n
    return out, clipped.sum()


@nb.njit(parallel=True, cache=True)
def _luminance_block_sum(x, k, wts, clip):
    """Y summed over the block; colour = Σ RGB / Σ Y over the block's unclipped pixels."""
    h, w, _ = x.shape
    ho, wo = h // k, w // k
    out = np.empty((ho, wo, 3), np.float32)
    clipped = np.zeros(ho, np.int64)
    for i in nb.prange(ho):
        n = 0
        for j in range(wo):
            y_all = 0.0
            y_ok = 0.0
            r = 0.0
            g = 0.0
            b = 0.0
            for u in range(k):
                for v in range(k):
                    p0 = x[i * k + u, j * k + v, 0]
                    p1 = x[i * k + u, j * k + v, 1]
                    p2 = x[i * k + u, j * k + v, 2]
                    y = wts[0] * p0 + wts[1] * p1 + wts[2] * p2
                    y_all += y
                    if p0 >= clip or p1 >= clip or p2 >= clip:
                        n += 1
                    else:
                        y_ok += y
                        r += p0
                        g += p1
                        b += p2
            if y_ok > 0.0:
                f = y_all / y_ok
                out[i, j, 0] = r * f
                out[i, j, 1] = g * f
                out[i, j, 2] = b * f
            else:  # no usable colour in the block (all clipped or black): neutral
                out[i, j, 0] = y_all
                out[i, j, 1] = y_all
                out[i, j, 2] = y_all
        clipped[i] = n
    return out, clipped.sum()


@nb.njit(cache=True)
def _bayer_site(s, hi, white, scale, cap):
    if hi >= white:
        return cap
    if scale == 1.0:
        return min(s, cap)
    return min(int(s * scale + 0.5), cap)


@nb.njit(cache=True)
def _bayer_row(m, k, white, scale, cap, oi, out):
    """One output row of `_bayer_block_sum`; returns how many of its sites are clipped. Each 2k-wide block
    of the k same-colour input rows is read once, left to right, filling an even and an odd output site."""
    r0 = (oi >> 1) * 2 * k + (oi & 1)
    n = 0
    for bj in range(out.shape[1] // 2):
        c = bj * 2 * k
        se = 0
        so = 0
        he = 0
        ho = 0
        for u in range(k):
            row = m[r0 + 2 * u]
            for v in range(k):
                e = row[c + 2 * v]
                o = row[c + 2 * v + 1]
                se += e
                so += o
                he = max(he, e)
                ho = max(ho, o)
        out[oi, 2 * bj] = _bayer_site(se, he, white, scale, cap)
        out[oi, 2 * bj + 1] = _bayer_site(so, ho, white, scale, cap)
        n += (he >= white) + (ho >= white)
    return n


@nb.njit(cache=True)
def _row_max(row):
    top = row[0]
    for j in range(row.shape[0]):
        top = max(top, row[j])
    return top


@nb.njit(cache=True)
def _bayer_row_2x2(a, b, o, white, cap):
    """Fast path of `_bayer_row` for k = 2 when the sums fit 16 bits: plain adds, then the rare clipped input
    sites (rows with any are found by their maximum) mark their output site. Returns the clipped count."""
    for bj in range(o.shape[0] // 2):
        c = bj * 4
        o[2 * bj] = a[c] + a[c + 2] + b[c] + b[c + 2]
        o[2 * bj + 1] = a[c + 1] + a[c + 3] + b[c + 1] + b[c + 3]
    if max(_row_max(a), _row_max(b)) < white:
        return 0
    for j in range(min(a.shape[0], o.shape[0] * 2)):
        if a[j] >= white or b[j] >= white:
            o[(j >> 2) * 2 + (j & 1)] = cap
    n = 0
    for oj in range(o.shape[0]):  # sums of unclipped sites stay below cap, so cap means clipped
        n += o[oj] == cap
    return n


@nb.njit(parallel=True, cache=True)
def _bayer_block_sum(m, k, white, scale, cap):
    """Same-colour k×k sums of a Bayer mosaic, keeping the 2×2 pattern. Returns uint16 values
    round(sum·scale) capped at `cap`; an output site with any clipped input site is set to `cap`."""
    h, w = m.shape
    out = np.empty(((h // (2 * k)) * 2, (w // (2 * k)) * 2), np.uint16)
    clipped = np.zeros(out.shape[0], np.int64)
    for oi in nb.prange(out.shape[0]):
        r0 = (oi >> 1) * 2 * k + (oi & 1)
        if k == 2 and scale == 1.0:
            clipped[oi] = _bayer_row_2x2(m[r0], m[r0 + 2], out[oi], white, cap)
        else:
            clipped[oi] = _bayer_row(m, k, white, scale, cap, oi, out)
    return out, clipped.sum()


def _as_hwc(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x[..., None] if x.ndim == 2 else x


def bin_rgb(image: np.ndarray, factor: int, mode: str = "sum") -> tuple[np.ndarray, float]:
    """k×k binning of a linear H×W or H×W×C float image. `sum` adds the k² pixels (+log2(k²) EV), `mean`
    averages them (same exposure, k× lower noise). Returns (float32 image, fraction of clipped input pixels)."""
    x = _as_hwc(image)
    out, n = _block_sum(x, int(factor), np.float32(CLIP_LEVEL))
    if mode == "mean":
        out /= factor * factor
    used = (x.shape[0] // factor) * (x.shape[1] // factor) * factor * factor
    return out.reshape(out.shape[:2] + image.shape[2:]), n / max(used, 1)


def bin_luminance(image: np.ndarray, factor: int, mode: str = "sum") -> tuple[np.ndarray, float]:
    """Binning of luminance only: Y is summed over each k×k block and the block keeps the chroma ratios
    (R:G:B relative to Y) of its unclipped pixels. On clean linear data this equals `bin_rgb`; the two differ
    where pixels clip: here a block keeps the colour of its unclipped pixels instead of the false colour a
    clipped channel gives. Grey images are binned as they are."""
    if image.ndim == 2 or image.shape[2] < 3:
        return bin_rgb(image, factor, mode)
    x = np.ascontiguousarray(image[..., :3], dtype=np.float32)
    out, n = _luminance_block_sum(x, int(factor), luma_weights(), np.float32(CLIP_LEVEL))
    if mode == "mean":
        out /= factor * factor
    used = (x.shape[0] // factor) * (x.shape[1] // factor) * factor * factor
    return out, n / max(used, 1)


def _area_weights(n_in: int, factor: float) -> sp.csr_matrix:
    """Sparse (⌊n/f⌋ × n) matrix whose row o holds the overlap of output cell [o·f, (o+1)·f) with each input
    pixel [i, i+1): area-weighted (fractional) binning along one axis."""
    n_out = int(math.floor(n_in / factor + 1e-9))
    rows, cols, vals = [], [], []
    for o in range(n_out):
        a, b = o * factor, (o + 1) * factor
        for i in range(int(math.floor(a)), min(int(math.ceil(b)), n_in)):
            w = min(b, i + 1) - max(a, i)
            if w > 1e-9:
                rows.append(o)
                cols.append(i)
                vals.append(w)
    return sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n_out, n_in))


def bin_fractional(image: np.ndarray, factor: float, mode: str = "sum") -> tuple[np.ndarray, float]:
    """Area-weighted binning by a non-integer factor f > 1: each output pixel integrates the f×f square of the
    input it covers (partial pixels weighted by their overlap), so `sum` gains log2(f²) EV exactly."""
    x = _as_hwc(image)
    rows, cols = _area_weights(x.shape[0], factor), _area_weights(x.shape[1], factor)
    out = np.stack([(rows @ (cols @ x[..., c].T).T) for c in range(x.shape[2])], axis=-1).astype(np.float32)
    if mode == "mean":
        out /= factor * factor
    clipped = float(np.mean(np.any(x >= CLIP_LEVEL, axis=-1)))
    return out.reshape(out.shape[:2] + image.shape[2:]), clipped


def bin_bayer(mosaic: RawMosaic, factor: int, mode: str = "sum") -> tuple[RawMosaic, float, float]:
    """Bin a Bayer mosaic by summing the k×k *same-colour* sites of each 2k×2k block, so the result is again
    a valid mosaic with the same CFA pattern, at 1/k the size.

    Values are stored as raw sums (black included: k²·black per site), so nothing is lost to rounding or to
    clipping noise below black. `sum` keeps the original black-to-white range, so a raw developer shows the
    result log2(k²) EV brighter, as if exposed k² times longer (and clips where such an exposure would);
    `mean` extends the white level by k², so it develops at the original exposure with k× less noise.
    An output site built from any clipped input site is set to the white level (clipped, never a false
    colour). If k²·white does not fit in 16 bits all values are scaled down to fit and the levels with them.
    Returns the binned mosaic, the fraction of output sites marked clipped, and the scale applied."""
    k = int(factor)
    white_in = float(mosaic.white)
    full = k * k * white_in
    scale = min(1.0, 65535.0 / full)
    black = mosaic.black.astype(np.float64) * k * k * scale
    cap = int(min(65535, math.floor(full * scale)))
    data, n = _bayer_block_sum(np.ascontiguousarray(mosaic.data, dtype=np.uint16), k, int(white_in), scale, cap)
    if mode == "sum":
        white = float(black.max() + (white_in - mosaic.black.max()) * scale)
        ev = 2 * math.log2(k)
    else:
        white = float(cap)
        ev = 0.0
    binned = mosaic.with_data(data, black=black.astype(np.float32), white=white, baseline_ev=mosaic.baseline_ev + ev)
    return binned, n / max(data.size, 1), scale
