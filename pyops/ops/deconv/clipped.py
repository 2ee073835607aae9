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
    kernel = psf.astype(np.float64)
    labels, _ = ndimage.label(clipped)
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        win = tuple(slice(max(s.start - radius - 1, 0), s.stop + radius + 1) for s in box)
        if (win[0].stop - win[0].start) * (win[1].stop - win[1].start) > MAX_WINDOW:
            continue  # a clipped sky or wall, no compact light
        core = labels[win] == i
        ring = ndimage.binary_dilation(core, iterations=radius) & ~clipped[win]
        if ring.sum() < 3:
            continue
        out = np.zeros(core.shape)
        if _fit_core(core, ring, x[win].astype(np.float64), kernel, offsets, radii, float(white), out):
            values[win][core] = out[core]
            where[win] |= core
    return values, where
