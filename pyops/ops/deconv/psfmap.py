"""Spatially varying blur: a PSF map, the blur measured zone by zone and interpolated between zones.

A map is a rows × cols × h × w array: kernel [i, j] is the blur at the centre of zone (i, j) of the frame cut into
rows × cols equal zones, at ((j + ½)/cols, (i + ½)/rows) of its width and height whatever the image's size. Between
the centres the kernel is interpolated bilinearly and beyond the outer centres it is held (Nagy & O'Leary,
"Restoring images degraded by spatially variant blur", SIAM J. Sci. Comput. 19, 1998: piecewise interpolated
PSFs). The tiled engine (pyops.ops.deconv.tiles) deconvolves each tile with the kernel at its core's centre and
cross-fades the tiles with windows that sum to one — the overlap-add of Efficient Filter Flow (Hirsch, Sra,
Schölkopf & Harmeling, CVPR 2010) applied per section; the tiles are cut to half a zone so the kernel changes
little within one.

Every zone's kernel is centred on its centroid to a fraction of a pixel (psf.as_map): a kernel's offset
shifts the restored image, and two tiles shifted differently would double the edges where they are cross-faded.
"""
from __future__ import annotations

import math

import numpy as np

from pyops.ops.deconv.psf import MAX_GRID, normalize

MIN_TILE = 256  # px: the smallest tile core a map asks for (margins would dominate smaller ones)


def zones(h: int, w: int, rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """The rows × cols equal zones of an h × w frame as (x, y, width, height), row by row."""
    ys = [round(i * h / rows) for i in range(rows + 1)]
    xs = [round(j * w / cols) for j in range(cols + 1)]
    return [(xs[j], ys[i], xs[j + 1] - xs[j], ys[i + 1] - ys[i]) for i in range(rows) for j in range(cols)]


def parse_grid(text: str) -> tuple[int, int]:
    """'3x2' (columns × rows, as image sizes are written) → (rows, cols) = (2, 3)."""
    cols, sep, rows = text.strip().lower().replace("×", "x").partition("x")
    if not (sep and cols.isdigit() and rows.isdigit() and 1 <= int(cols) <= MAX_GRID and 1 <= int(rows) <= MAX_GRID):
        raise ValueError(f"grid must be COLUMNSxROWS with 1 to {MAX_GRID} each, e.g. 3x3 or 3x2, got {text!r}")
    return int(rows), int(cols)


def kernel_at(psf: np.ndarray, y: float, x: float) -> np.ndarray:
    """The kernel at (y, x), fractions of the frame's height and width: the map interpolated bilinearly between
    its zone centres (held beyond the outermost); a 2-D kernel is the same everywhere."""
    if psf.ndim == 2:
        return psf
    rows, cols = psf.shape[:2]

    def node(t: float, n: int) -> tuple[int, int, float]:
        s = min(max(t * n - 0.5, 0.0), n - 1.0)
        i = min(int(s), max(n - 2, 0))
        return i, min(i + 1, n - 1), s - i

    i0, i1, a = node(y, rows)
    j0, j1, b = node(x, cols)
    k = ((1 - a) * ((1 - b) * psf[i0, j0] + b * psf[i0, j1]) + a * ((1 - b) * psf[i1, j0] + b * psf[i1, j1]))
    return normalize(k)


def tile_side(psf: np.ndarray, h: int, w: int, tile: int) -> int:
    """The tile core side for deconvolving an h × w image with `psf`: `tile`, or for a map of several zones at most
    half a zone (at least MIN_TILE), so each tile's kernel stands for its whole core."""
    if psf.ndim == 2 or psf.shape[0] * psf.shape[1] == 1:
        return tile
    return min(tile, max(MIN_TILE, math.floor(min(h / psf.shape[0], w / psf.shape[1]) / 2)))
