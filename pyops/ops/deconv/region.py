"""Where to measure a blur when the user did not say: the window with the most edges that stand out of the noise,
away from clipped highlights and from the image's borders.

A blind estimate needs strong edges in several directions (Cho & Lee, "Fast Motion Deblurring", SIGGRAPH Asia
2009; Hu & Yang, "Good Regions to Deblur", ECCV 2012, rank regions the same way). So each window is scored by the
energy of its gradients above a 3σ noise floor, σ measured locally (the median finest diagonal Haar coefficient
of each 32 px block / 0.6745, Donoho & Johnstone 1994 — noise is signal-dependent), so a dark noisy area scores
nothing however large its raw gradient energy, counted along x and along y and the
smaller of the two kept (straight lines in one direction cannot fix a 2-D kernel).
Windows holding clipped pixels, whose blur is not a convolution (Whyte, Sivic & Zisserman, IJCV 2014), are
skipped, and so are windows touching the outer BORDER of the frame, where lenses are softest.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from pyops.color import luminance
from pyops.ops.deconv.noise import haar_diagonal

NOISE_BLOCK = 32  # px: the side of the blocks over which the noise is measured
CLIP = 0.98  # a channel at or above this fraction of white (1.0) is clipped
CLIP_REACH = 16  # px: a clipped pixel spoils the gradients around it as far as a blur reaches
MAX_CLIPPED = 0.002  # windows with a larger clipped fraction (after the reach) are not used
BORDER = 0.03  # fraction of the short side kept out of the automatic window at every edge


def clipped(image: np.ndarray) -> np.ndarray:
    """Pixels where any channel is at or above CLIP of white."""
    x = np.asarray(image)
    return (x >= CLIP).any(axis=-1) if x.ndim == 3 else x >= CLIP


def local_noise(gray: np.ndarray, block: int = NOISE_BLOCK) -> np.ndarray:
    """The noise σ around each pixel: per block×block tile, the median |finest diagonal Haar coefficient| /
    0.6745; an H×W map (the last tiles cover what is left at the right and bottom edges)."""
    h, w = gray.shape
    d = np.abs(haar_diagonal(gray.astype(np.float32, copy=False)))
    ny, nx = min(block // 2, d.shape[0]), min(block // 2, d.shape[1])  # Haar coefficients per tile side
    ty, tx = d.shape[0] // ny, d.shape[1] // nx
    tiles = np.median(d[: ty * ny, : tx * nx].reshape(ty, ny, tx, nx).transpose(0, 2, 1, 3).reshape(ty, tx, -1), -1)
    tiles = (tiles / 0.6745).astype(np.float32)
    rows = np.minimum(np.arange(h) // (2 * ny), ty - 1)
    cols = np.minimum(np.arange(w) // (2 * nx), tx - 1)
    return tiles[rows[:, None], cols[None]]


def _window_sums(plane: np.ndarray, size: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sums of `plane` over the windows of `size` (h, w) whose top-left corners are ys × xs (a summed-area table)."""
    table = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1))
    np.cumsum(plane, axis=0, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    h, w = size
    return (table[ys[:, None] + h, xs[None] + w] - table[ys[:, None], xs[None] + w]
            - table[ys[:, None] + h, xs[None]] + table[ys[:, None], xs[None]])


def detail_region(image: np.ndarray, size: int = 512) -> tuple[int, int, int, int]:
    """The size×size window (x, y, w, h) of `image` (linear, 1.0 = white; H×W or H×W×C) where a blur is best
    measured: the largest min(energy along x, energy along y) of the gradients above the noise, among windows
    inside the border margin and (where any is) without clipped pixels."""
    gray = luminance(image) if np.ndim(image) == 3 else np.asarray(image, np.float32)
    h, w = gray.shape
    side = (min(size, h), min(size, w))
    # x and y energies of the gradients above 3σ (a difference of two noisy pixels has σ√2)
    floor = np.maximum(local_noise(gray), 1e-6)
    floor *= floor
    floor *= 18.0
    gx = np.diff(gray, axis=1, append=gray[:, -1:])
    gx *= gx
    gy = np.diff(gray, axis=0, append=gray[-1:])
    gy *= gy
    weak = gx + gy <= floor
    del floor
    gx[weak] = 0
    gy[weak] = 0
    del weak
    clip = clipped(image)
    bad = ndimage.maximum_filter(clip, size=2 * CLIP_REACH + 1) if clip.any() else None
    step = max(min(side) // 16, 1)
    margin = int(BORDER * min(h, w))

    def corners(n: int, s: int) -> np.ndarray:
        lo, hi = min(margin, n - s), max(n - s - margin, 0)
        return np.arange(lo, max(hi, lo) + 1, step)

    ys, xs = corners(h, side[0]), corners(w, side[1])
    # the smaller of the x and y energies: edges in one direction only cannot fix a 2-D kernel
    score = np.minimum(_window_sums(gx, side, ys, xs), _window_sums(gy, side, ys, xs))
    if bad is not None:
        spoilt = _window_sums(bad, side, ys, xs) / (side[0] * side[1])
        if (spoilt <= MAX_CLIPPED).any():
            score = np.where(spoilt <= MAX_CLIPPED, score, -1.0)
    r, c = np.unravel_index(np.argmax(score), score.shape)
    return int(xs[c]), int(ys[r]), side[1], side[0]
