"""Tiled deconvolution: memory bounded by the tile, not the image.

The image is cut into cores of at most TILE×TILE px; each core is deconvolved with `reach` px of image around
it — a blend zone of BLEND px, then context whose result is thrown away, so the tile's own padded border never
reaches the core — and the results are blended across the core boundaries with raised-cosine weights that sum to
one (a partition of unity): the overlap-add scheme of sectioned deconvolution (Trussell & Hunt, "Sectioned
methods for image restoration", IEEE Trans. ASSP 26, 1978), here with windows instead of a
hard cut so no seam shows.

Every tile must run the same iterations with the same λ, or neighbours would stop at different points and the
seams would show. The noise model and λ come from the whole image (rl.prepare); the automatic stop is decided
on one probe tile — the one with the most detail, where sharpening matters and where iterations add noise first
— and every tile then runs that many iterations with the λ the probe ended with (raised by the model check when
the kernel does not fit) and the probe's Biggs–Andrews extrapolations, iteration by iteration (each tile's own
would differ, and so would their paths). The padding at the image's borders fades to the image's mean, as a
whole-image run's does. An image that fits in one tile is deconvolved whole, exactly as before.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable

import numpy as np

from pyops.ops.deconv import rl

TILE = 1280  # core side in px: a ≈ 1400² RGB tile's working set is ≈ 230 MB (rl: 7 planes per channel + 7 shared)
BLEND = 16  # px on each side of a core boundary where two tiles are cross-faded
MARGIN_MIN = 32  # px of image beyond the blend zone whose result is discarded, at least…
MARGIN_KERNELS = 3  # …and this many kernel sizes (RL's reach grows with the iterations; measured in tests)


def reach(kernel: int) -> int:
    """Px of image on each side of a core that its tile holds: the blend zone, then context whose result is
    discarded, for a kernel of `kernel` px."""
    return BLEND + max(MARGIN_MIN, MARGIN_KERNELS * kernel)


def extent(n: int, kernel: int, tile: int = TILE) -> int:
    """The largest tile along a side of n px (core and context on both sides) for a kernel of `kernel` px."""
    bounds = cores(n, tile)
    if len(bounds) == 2:
        return n
    return min(n, max(b - a for a, b in itertools.pairwise(bounds)) + 2 * reach(kernel))


def cores(n: int, tile: int) -> list[int]:
    """Boundaries 0 = c₀ < c₁ < … < c_k = n of k equal cores of at most `tile` px."""
    k = max(1, math.ceil(n / tile))
    return [round(i * n / k) for i in range(k + 1)]


def weights(bounds: list[int], i: int, lo: int, hi: int) -> np.ndarray:
    """The blending weight of core i (between bounds[i] and bounds[i + 1]) over the tile's rows (or columns)
    lo…hi."""
    t = np.arange(lo, hi, dtype=np.float64)
    w = np.ones(hi - lo)
    if i > 0:
        w *= _rise(t, bounds[i])
    if i + 2 < len(bounds):
        w *= 1 - _rise(t, bounds[i + 1])
    return w.astype(np.float32)


def _rise(t: np.ndarray, at: int) -> np.ndarray:
    """0 before at − BLEND, 1 from at + BLEND, a raised cosine between."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip((t - (at - BLEND) + 0.5) / (2 * BLEND), 0, 1))


def deconvolve(image: np.ndarray, psf: np.ndarray, opts: rl.Options, progress: Callable[[float, str], None] | None = None,
               tile: int | None = None) -> tuple[np.ndarray, dict]:
    """rl.deconvolve in tiles of at most `tile`² px (default TILE; plus margins): the same arguments and result."""
    tile = tile or TILE
    grey = np.ndim(image) == 2
    x, clipped, model, lam = rl.prepare(image, opts)
    h, w = x.shape[:2]
    r = reach(max(psf.shape))
    rows, cols = cores(h, tile), cores(w, tile)
    if len(rows) == 2 and len(cols) == 2:
        out, info = rl.run(x, clipped, psf, model, lam, opts, progress)
        return (out[..., 0] if grey else out), info
    boxes = [(i, j, max(rows[i] - r, 0), min(rows[i + 1] + r, h), max(cols[j] - r, 0), min(cols[j + 1] + r, w))
             for i in range(len(rows) - 1) for j in range(len(cols) - 1)]
    n = len(boxes)
    probe = boxes[int(np.argmax([_detail(x[b[2]:b[3], b[4]:b[5]]) for b in boxes]))]
    levels = [float(x[..., c].mean()) for c in range(x.shape[2])]  # the image's borders padded as when whole
    whites = rl.white_levels(x, opts.white)
    shape, n_clipped = x.shape, int(clipped.sum())
    del x, clipped  # each tile is cut from `image` again: memory for one tile, not a copy of the image

    def cut(r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """A tile as rl.prepare makes the whole image: float32 ≥ 0, and its clipped pixels."""
        t = rl.observed(image[r0:r1, c0:c1])
        return t, rl.clipped_mask(t, whites)

    def part(k: int, label: str) -> Callable[[float, str], None] | None:
        if progress is None:
            return None
        return lambda f, msg: progress((k + f) / (n + 1), f"{label}: {msg}")

    alphas: list[float] = []
    r0, r1, c0, c1 = probe[2:]
    u_probe, info = rl.run(*cut(r0, r1, c0, c1), psf, model, lam, opts,
                           part(0, f"probe tile ({c0}, {r0}) {c1 - c0}×{r1 - r0}"), levels, record=alphas)
    fixed = dataclasses.replace(opts, stop="none", iterations=max(info["iterations"], 1),
                                regularization=info["regularization"])
    out = np.zeros(shape, np.float32)
    residual = 0.0
    for k, (i, j, r0, r1, c0, c1) in enumerate(boxes):
        if (i, j) == probe[:2] and info["regularization"] == lam:
            u, t_info = u_probe, info  # the probe ran these very iterations
        else:
            u, t_info = rl.run(*cut(r0, r1, c0, c1), psf, model, fixed.regularization, fixed,
                               part(k + 1, f"tile {k + 1} of {n}"), levels, alphas)
        wgt = np.outer(weights(rows, i, r0, r1), weights(cols, j, c0, c1))[..., None]
        out[r0:r1, c0:c1] += wgt * u
        residual += (t_info["residual"] or 0.0) * float(wgt.sum())
    residual /= h * w
    r0, r1, c0, c1 = probe[2:]
    info = {**info, "clipped_pixels": n_clipped, "tiles": n, "tile_size": tile,
            "probe_tile": [c0, r0, c1 - c0, r1 - r0],  # x, y, width, height
            "stopped": f"probe tile: {info['stopped']}; every tile ran {fixed.iterations} iterations",
            "residual": residual, "notes": rl.residual_notes(residual, model)}
    return (out[..., 0] if grey else out), info


def _detail(x: np.ndarray) -> float:
    """Mean squared gradient: how much there is to sharpen."""
    return float(np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2))
