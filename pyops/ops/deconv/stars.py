"""The PSF of an astro frame measured on its stars: find isolated, unsaturated point sources, subtract the local
sky, centre each on its sub-pixel centroid, normalise to unit flux and median-stack — an empirical PSF in the
manner of DAOPHOT (Stetson, PASP 99, 1987), without its analytic core. The median rejects the odd cosmic ray,
hot pixel or faint neighbour that a single star carries."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pyops.ops.deconv.psf import normalize

DETECT_SIGMA = 10.0  # peaks this many noise σ above the sky are candidate stars
MIN_STARS = 3
MAX_STARS = 60


def _sky_and_noise(gray: np.ndarray) -> tuple[float, float]:
    """Sky level (median) and noise σ (MAD of pixel-to-pixel differences / (0.6745·√2)), robust to the stars."""
    sky = float(np.median(gray))
    diff = np.diff(gray, axis=1).ravel()
    sigma = float(np.median(np.abs(diff - np.median(diff))) / (0.6745 * np.sqrt(2)))
    return sky, max(sigma, 1e-9)


def fwhm(psf: np.ndarray) -> float:
    """Full width at half maximum of a centred PSF, from the area above half the peak (2·√(A/π))."""
    return float(2 * np.sqrt((psf >= psf.max() / 2).sum() / np.pi))


def measure(gray: np.ndarray, size: int | None = None, saturation: float | None = None) -> tuple[np.ndarray, dict]:
    """The PSF of the stars in `gray` (linear), odd `size` (None: about 4 FWHM). Returns (psf, info)."""
    g = np.asarray(gray, np.float64)
    sky, sigma = _sky_and_noise(g)
    saturation = 0.98 * g.max() if saturation is None else saturation
    box = size or 31
    r = box // 2 + 2  # cut-outs with a 2 px ring for the local sky
    smooth = ndimage.gaussian_filter(g, 1.0)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=5)) & (smooth > sky + DETECT_SIGMA * sigma)
    ys, xs = np.nonzero(peaks)
    faint = (smooth > sky + 3 * sigma) & (smooth == ndimage.maximum_filter(smooth, size=5))
    fy, fx = np.nonzero(faint)
    heights = smooth[fy, fx] - sky
    neighbours = cKDTree(np.column_stack([fy, fx]))
    candidates = []
    for y, x in zip(ys, xs):
        if y < r or x < r or y >= g.shape[0] - r or x >= g.shape[1] - r:
            continue
        cut = g[y - r: y + r + 1, x - r: x + r + 1]
        if cut.max() >= saturation:
            continue
        near = neighbours.query_ball_point((y, x), r * 1.5)
        if sum(heights[i] > 0.02 * (smooth[y, x] - sky) for i in near) > 1:  # another source that would show
            continue
        candidates.append((smooth[y, x], y, x))
    candidates.sort(reverse=True)
    stamps = []
    for _, y, x in candidates[:MAX_STARS]:
        cut = g[y - r: y + r + 1, x - r: x + r + 1]
        ring = np.concatenate([cut[:2].ravel(), cut[-2:].ravel(), cut[2:-2, :2].ravel(), cut[2:-2, -2:].ravel()])
        star = np.clip(cut - np.median(ring), 0, None)
        cy, cx = ndimage.center_of_mass(star)
        star = ndimage.shift(star, (r - cy, r - cx), order=3, mode="constant")[2:-2, 2:-2]
        total = star.sum()
        if total > 0:
            stamps.append(star / total)
    if len(stamps) < MIN_STARS:
        raise ValueError(f"found {len(stamps)} isolated, unsaturated stars in the region; at least {MIN_STARS} are "
                         "needed (choose a region with more stars, or the blind method)")
    psf = np.clip(np.median(stamps, axis=0), 0, None)
    width = fwhm(psf)
    if size is None:
        keep = int(np.clip(round(2 * width), 3, box // 2))  # ±2 FWHM
        c = box // 2
        psf = psf[c - keep: c + keep + 1, c - keep: c + keep + 1]
    return normalize(psf), {"stars": len(stamps), "fwhm": round(width, 2), "sky": sky, "noise": sigma}
