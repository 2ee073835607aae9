"""The light hidden in clipped areas: where to start the deconvolution inside a lamp's or a highlight's clipped core.

Clipped pixels get no data term (Whyte, Sivic & Zisserman, IJCV 110, 2014), so RL cannot put the light back
where it came from: its multiplicative update only reaches the core through the pixels around it, the core's rim
fills first, the centre hardly at all, and a dark ring is left around every lamp (a Gaussian blur: ringing
1.1× lower than without the mask, bench/nonblind.py). The light of a lamp, a star or a specular highlight lies
well inside its clipped core: a point's light spreads over the kernel's support, so where the blurred light
clips, the core is about the light dilated by that support. Each core therefore starts from a compact-light model
fitted to the halo around it:

    f ≈ b + A · (K ∗ 1[core ⊖ S_r])  on the unclipped ring within the kernel's radius of the core,

with ⊖ the morphological erosion and S_r the kernel's support (values ≥ SUPPORT of its peak) within r px of its
centre, r = 0 … the kernel's radius (r = 0: the whole core; a motion blur's support is a line, so a streak's
core shrinks back along the motion only). One linear least-squares fit of (A, b) per r, the r with the least
residual kept; inside the core the start is b, and b + A (at least the white level) on the eroded core. RL then
refines it as usual; a core whose ring holds no data, and a clipped area too large to be a compact light (a sky,
a wall: more than MAX_WINDOW px around it), keep the ordinary start.

Measured (bench/nonblind.py, the night scene's nine lamps): ringing without ÷ with the mask, RL-TV, Gaussian /
disk / motion blur 1.1 / 5.2 / 11.0 before this start, 10.2 / 22.1 / 10.3 with it; on the mixed scenes of
tests/test_deconvolve_auto.py (ellipses, lit windows, specular streaks, one-pixel stars) 2.8–9.5.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from scipy import ndimage

SUPPORT = 0.05  # of the kernel's peak: where a point's light spreads to
MAX_WINDOW = 256 * 256  # px around a core: larger clipped areas (a sky, a wall) are no compact light and are skipped


@nb.njit(cache=True)
def _fit_core(core, ring, f, psf, offsets, radii, white, out):
    """The compact-light fit of one core (module docstring) in its window: for r = 0, 1, … erode the core by the
    support offsets within r (incrementally: S_r grows), spread the eroded core by `psf` onto the ring, fit (A, b)
    by least squares in closed form; write b on the core and max(b + A, white) on the best eroded core into
    `out`. Returns False when no r gives A > 0."""
    h, w = core.shape
    kh, kw = psf.shape
    inner = core.copy()
    best = np.zeros_like(core)
    best_err, best_a, best_b = np.inf, 0.0, 0.0
    s = np.zeros((h, w))
    k = 0
    while True:
        r = radii[k]
        while k < radii.size and radii[k] <= r:  # S_r: every support offset within r of the centre
            oy, ox = offsets[k]
            for y in range(h):
                for x in range(w):
                    if inner[y, x]:
                        yy, xx = y + oy, x + ox
                        if not (0 <= yy < h and 0 <= xx < w and core[yy, xx]):
                            inner[y, x] = False
            k += 1
        s[:] = 0.0
        any_inner = False
        for y in range(h):
            for x in range(w):
                if inner[y, x]:
                    any_inner = True
                    for i in range(kh):
                        for j in range(kw):
                            yy, xx = y + i - kh // 2, x + j - kw // 2
                            if 0 <= yy < h and 0 <= xx < w:
                                s[yy, xx] += psf[i, j]
        if not any_inner:
            break
        n = ss = s2 = sf = sff = 0.0
        for y in range(h):
            for x in range(w):
                if ring[y, x]:
                    n += 1.0
                    ss += s[y, x]
                    s2 += s[y, x] * s[y, x]
                    sf += s[y, x] * f[y, x]
                    sff += f[y, x]
        var = s2 - ss * ss / n
        if var > 1e-12:
            a = (sf - ss * sff / n) / var
            b = (sff - a * ss) / n
            err = 0.0
            for y in range(h):
                for x in range(w):
                    if ring[y, x]:
                        d = f[y, x] - b - a * s[y, x]
                        err += d * d
            if a > 0 and err < best_err:
                best_err, best_a, best_b = err, a, b
                best[:] = inner
        if k >= radii.size:
            break
    if best_err == np.inf:
        return False
    for y in range(h):
        for x in range(w):
            if core[y, x]:
                out[y, x] = max(best_a + best_b, white) if best[y, x] else max(best_b, 0.0)
    return True


@nb.njit(cache=True)
def _fit_all(labels, boxes, clipped, x, psf, offsets, radii, white, radius, values, where):
    """_fit_core for every labelled core (boxes: row and column start/stop of each), in its window widened by the
    kernel's radius; the ring is the unclipped part of the core dilated `radius` times (a diamond)."""
    hh, ww = labels.shape
    for i in range(boxes.shape[0]):
        r0, r1 = max(boxes[i, 0] - radius - 1, 0), min(boxes[i, 1] + radius + 1, hh)
        c0, c1 = max(boxes[i, 2] - radius - 1, 0), min(boxes[i, 3] + radius + 1, ww)
        if (r1 - r0) * (c1 - c0) > MAX_WINDOW:
            continue  # a clipped sky or wall, no compact light
        h, w = r1 - r0, c1 - c0
        core = np.zeros((h, w), np.bool_)
        ring = np.zeros((h, w), np.bool_)
        for y in range(h):
            for xx in range(w):
                core[y, xx] = labels[r0 + y, c0 + xx] == i + 1
        n_ring = 0
        for y in range(h):
            for xx in range(w):
                if core[y, xx]:
                    for dy in range(-radius, radius + 1):
                        span = radius - abs(dy)
                        for dx in range(-span, span + 1):
                            yy, xq = y + dy, xx + dx
                            if 0 <= yy < h and 0 <= xq < w and not ring[yy, xq] and not clipped[r0 + yy, c0 + xq]:
                                ring[yy, xq] = True
                                n_ring += 1
        if n_ring < 3:
            continue
        out = np.zeros((h, w))
        f = x[r0:r1, c0:c1].astype(np.float64)
        if _fit_core(core, ring, f, psf, offsets, radii, white, out):
            for y in range(h):
                for xx in range(w):
                    if core[y, xx]:
                        values[r0 + y, c0 + xx] = out[y, xx]
                        where[r0 + y, c0 + xx] = True


def light_start(x: np.ndarray, clipped: np.ndarray, psf: np.ndarray, white: float) -> tuple[np.ndarray, np.ndarray]:
    """(values, where): the start inside the clipped cores of one H×W channel `x` blurred by `psf`, by the
    compact-light fit of the module docstring; `where` marks the cores that were fitted."""
    values = np.zeros(x.shape, np.float32)
    where = np.zeros(x.shape, bool)
    radius = max(psf.shape) // 2
    if radius < 1:
        return values, where
    oy, ox = np.nonzero(psf >= SUPPORT * psf.max())
    oy, ox = oy - psf.shape[0] // 2, ox - psf.shape[1] // 2
    order = np.argsort(np.hypot(oy, ox), kind="stable")
    offsets = np.stack([oy[order], ox[order]], axis=1).astype(np.int64)
    radii = np.ceil(np.hypot(oy, ox)[order]).astype(np.float64)  # S_r = the offsets with radii ≤ r
    labels, _ = ndimage.label(clipped)
    boxes = np.array([(b[0].start, b[0].stop, b[1].start, b[1].stop) for b in ndimage.find_objects(labels)],
                     np.int64).reshape(-1, 4)
    _fit_all(labels, boxes, clipped, x, psf.astype(np.float64), offsets, radii, float(white), radius, values, where)
    return values, where
