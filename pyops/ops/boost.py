"""Luminance boost: tone changes computed on luminance and applied to colour by one common factor per pixel,
so the chroma ratios R:G:B (hue and saturation) are kept.

- gain: exposure gain by 2^EV (exact below the highlight shoulder);
- auto EV: the gain that puts the scene's median luminance at middle grey (18 %);
- power: Y' = Y^p with p chosen so the median gains `ev` stops while white stays white;
- auto_gamma: encoded lightness L' = L^γ with γ = log 0.5 / log mean(L) (mean → 50 %), the classic auto-gamma;
- equalize: histogram equalisation of perceptual lightness (sRGB-encoded Y), output uniform in lightness;
- clahe: contrast-limited adaptive histogram equalisation (Zuiderveld, Graphics Gems IV, 1994) of the same
  lightness, via scikit-image.
Highlights: `rolloff` compresses the max-RGB norm above a knee with an exponential shoulder that has slope 1
at the knee and approaches 1.0 without reaching it (never a hard clip, never a hue shift); `clip` scales the
pixel so its largest channel is 1.0 (a hard clip that still keeps the hue).

All functions are pure: float32 arrays in and out, no NaN or Inf for zero, negative or huge inputs.
"""
from __future__ import annotations

import math

import numpy as np

from pyops.color import luminance, luminance_ratio, srgb_decode, srgb_encode

MIDDLE_GREY = 0.18
KNEE = 0.8
BELOW_WHITE = np.nextafter(np.float32(1.0), np.float32(0.0))  # the largest float32 below 1.0
EV_LIMIT = 16.0
_TINY = 1e-12


def sanitize(image: np.ndarray) -> np.ndarray:
    """Finite float32 copy: NaN → 0, ±Inf → the largest finite float32."""
    return np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=np.finfo(np.float32).max,
                         neginf=-np.finfo(np.float32).max)


def auto_ev(y: np.ndarray) -> tuple[float, str]:
    """EV that puts the median of the positive luminances at middle grey (limited to ±16 EV)."""
    pos = y[y > 0]
    if pos.size == 0:
        return 0.0, "no positive luminance: EV 0"
    med = float(np.median(pos))
    ev = float(np.clip(math.log2(MIDDLE_GREY / med), -EV_LIMIT, EV_LIMIT))
    return ev, f"median luminance {med:.4g} → {MIDDLE_GREY}"


def shoulder(m: np.ndarray, highlights: str) -> np.ndarray:
    """Tone-map the max-RGB norm `m` (float64): identity below KNEE, then an exponential roll-off that tends
    to 1.0 (`rolloff`), or min(m, 1) (`clip`)."""
    if highlights == "clip":
        return np.minimum(m, 1.0)
    head = 1.0 - KNEE
    return np.where(m <= KNEE, m, KNEE + head * -np.expm1(-(np.maximum(m, KNEE) - KNEE) / head))


def _apply_factor(rgb: np.ndarray, factor: np.ndarray, highlights: str) -> np.ndarray:
    """Multiply each pixel by `factor`, then pass its max-RGB norm through the highlight shoulder."""
    scaled = rgb.astype(np.float64) * factor[..., None] if rgb.ndim == 3 else rgb.astype(np.float64) * factor
    m = scaled.max(axis=-1) if scaled.ndim == 3 else scaled
    safe = np.where(m > _TINY, m, 1.0)
    k = np.where(m > _TINY, shoulder(m, highlights) / safe, 1.0)
    out = (scaled * (k[..., None] if scaled.ndim == 3 else k)).astype(np.float32)
    if highlights == "rolloff":  # the shoulder stays below 1.0, but float32 rounds its top to 1.0
        np.minimum(out, BELOW_WHITE, out=out)
    return out


def gain(rgb: np.ndarray, ev: float, highlights: str = "rolloff") -> np.ndarray:
    """Exposure gain by 2^ev applied to all channels alike, then the highlight shoulder."""
    x = sanitize(rgb)
    return _apply_factor(x, np.full(x.shape[:2], 2.0 ** ev), highlights)


def power(rgb: np.ndarray, ev: float, highlights: str = "rolloff") -> tuple[np.ndarray, float]:
    """Y' = Y^p with p = log(median·2^ev)/log(median): the median gains `ev` stops, 0 and 1 stay put.
    Returns the image and p."""
    x = sanitize(rgb)
    y = np.clip(luminance(x).astype(np.float64), 0.0, 1.0)
    pos = y[(y > 0) & (y < 1)]
    med = float(np.median(pos)) if pos.size else MIDDLE_GREY
    target = min(med * 2.0 ** ev, 0.999)
    p = math.log(target) / math.log(med)
    return _apply_factor(x, luminance_ratio(np.power(y, p), y), highlights), p


def auto_gamma(rgb: np.ndarray, highlights: str = "rolloff") -> tuple[np.ndarray, float]:
    """Classic auto-gamma on perceptual lightness L (sRGB-encoded Y): L' = L^γ, γ = log 0.5 / log mean(L).
    Returns the image and γ."""
    x = sanitize(rgb)
    y = luminance(x)
    lum = srgb_encode(y).astype(np.float64)
    mean = float(np.clip(lum.mean(), 1e-6, 1 - 1e-6))
    g = math.log(0.5) / math.log(mean)
    new_y = srgb_decode(np.power(lum, g).astype(np.float32)).astype(np.float64)
    return _apply_factor(x, luminance_ratio(new_y, y), highlights), g


def equalize(rgb: np.ndarray, highlights: str = "rolloff", bins: int = 4096) -> np.ndarray:
    """Histogram equalisation of perceptual lightness: L' = CDF(L), so L' is uniform on [0, 1]."""
    x = sanitize(rgb)
    y = luminance(x)
    lum = srgb_encode(y)
    hist, edges = np.histogram(lum, bins=bins, range=(0.0, 1.0))
    cdf = np.cumsum(hist).astype(np.float64)
    cdf /= max(cdf[-1], 1.0)
    new_l = np.interp(lum, edges[1:], cdf).astype(np.float32)
    return _apply_factor(x, luminance_ratio(srgb_decode(new_l).astype(np.float64), y), highlights)


def clahe(rgb: np.ndarray, highlights: str = "rolloff", clip_limit: float = 0.01) -> np.ndarray:
    """CLAHE on perceptual lightness (skimage.exposure.equalize_adapthist, tiles of 1/8 of the image)."""
    from skimage.exposure import equalize_adapthist

    x = sanitize(rgb)
    y = luminance(x)
    new_l = equalize_adapthist(srgb_encode(y), clip_limit=clip_limit).astype(np.float32)
    return _apply_factor(x, luminance_ratio(srgb_decode(new_l).astype(np.float64), y), highlights)
