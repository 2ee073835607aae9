"""Colorimetry shared by the operators and the I/O: RGB primaries, luminance, the sRGB transfer curve.

Matrices follow the usual derivation from primaries and white point (e.g. Poynton, "Digital Video and HD",
ch. 26); chromatic adaptation to the ICC's D50 uses the Bradford transform (Lam 1985, as in ICC.1:2010 Annex E).
"""
from __future__ import annotations

import numpy as np

D65 = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])

PRIMARIES = {
    # name: (red xy, green xy, blue xy), white D65 for both
    "srgb": ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060)),
    "rec2020": ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046)),
}

_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xy_to_xyz(xy) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz(space: str = "srgb") -> np.ndarray:
    """3×3 matrix taking linear RGB of `space` (D65 white) to CIE XYZ (Y of white = 1)."""
    prim = np.stack([_xy_to_xyz(p) for p in PRIMARIES[space]], axis=1)
    scale = np.linalg.solve(prim, _xy_to_xyz(D65))
    return prim * scale


def rgb_to_xyz_d50(space: str = "srgb") -> np.ndarray:
    """RGB → XYZ adapted to D50 with Bradford, as an ICC matrix/TRC profile stores its colorants."""
    src = _BRADFORD @ _xy_to_xyz(D65)
    dst = _BRADFORD @ D50_XYZ
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(dst / src) @ _BRADFORD
    return adapt @ rgb_to_xyz(space)


def luma_weights(space: str = "srgb") -> np.ndarray:
    """Weights of R, G, B in relative luminance Y (Rec. 709: 0.2126, 0.7152, 0.0722 for sRGB primaries)."""
    return rgb_to_xyz(space)[1].astype(np.float32)


def luminance(rgb: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Relative luminance Y of a linear H×W×3 image (H×W images are returned as they are)."""
    if rgb.ndim == 2:
        return rgb
    w = luma_weights() if weights is None else weights
    return np.tensordot(rgb[..., :3], w, axes=([-1], [0])).astype(np.float32)


def luminance_ratio(new_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pixel factor new_y / y (float64), 0 where y ≤ 0: applied to R, G and B alike it changes luminance
    and keeps the colour ratios."""
    y64 = y.astype(np.float64)
    positive = y64 > 1e-12
    return np.where(positive, new_y / np.where(positive, y64, 1.0), 0.0)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB transfer: linear [0, 1] → encoded [0, 1] (input clipped to [0, 1])."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of `srgb_encode`: encoded [0, 1] → linear [0, 1]."""
    x = np.clip(encoded, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)
