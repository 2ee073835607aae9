"""Blind PSF estimation: find the blur kernel from a blurred region alone.

The scheme is Perrone & Favaro's ("Total Variation Blind Deconvolution: The Devil is in the Details", CVPR 2014):
alternate an image update and a kernel update, project the kernel onto {k ≥ 0, Σk = 1} after every kernel
step, and go coarse to fine (a √2 pyramid, the kernel upsampled from one scale to the next), on luminance.
Their plain gradient steps on the TV energy need thousands of iterations per scale, so each half-step is solved
in closed form instead:

- image: min ‖k∗u − f‖² + λ‖∇u‖₀ by half-quadratic splitting (Xu, Zheng & Jia, "Unnatural L0 Sparse
  Representation for Natural Image Deblurring", CVPR 2013): hard-threshold the gradients, solve the quadratic
  in the Fourier domain, double β; λ shrinks by 1/1.1 per pass (Pan, Hu, Su & Yang, CVPR 2014);
- kernel: min Σ_{∂∈{∂x,∂y}} ‖W(∂u ∗ k − ∂f)‖² + γ‖k‖² on the kernel's support by conjugate gradients (Pan et
  al.'s estimate_psf), the normal operator a small convolution with the gradients' autocorrelation; then
  projected, with values below 5 % of the peak and isolated specks removed.

Noise: each pyramid level is anti-aliased (Gaussian) before resampling, so the coarse scales see averaged-down
noise, and the kernel step weighs frequencies with a Gaussian low-pass W whose width follows the noise σ measured
at that scale (pyops.ops.deconv.rl.noise_sigma), so the kernel is fitted where the gradients stand out of the noise
(the aim of Zhong, Cho, Metaxas, Paris & Wang's directional filters, CVPR 2013, done here isotropically as a
weighted least squares). The low-pass never gets narrower than WEIGHT_MIN, even on a clean image: at the highest
frequencies the piecewise-flat L0 latent does not match the blurred image whatever the kernel (bench/blind.py:
Levin as given 15 → 18 of 32 with error ratio < 2, the varied set at low noise 7 → 13 of 24).

A failed estimate usually spreads over the whole search (on a region with few strong edges, like the face of
Levin's image 4 with the 23–27 px kernels). When the kernel found spans the search, the coarse-to-fine run is
repeated from a RETRY_FROM px coarsest scale instead of 3 px (for a 31 px search, the 3 px scale sees the region
shrunk ~10×), and the more compact of the two kernels (the smaller support box) is kept. A measured heuristic, not
from a paper (bench/blind.py: Levin as given, those three ratios 39–60 → 2.2–4.6; on the varied set
only estimates that had failed change); an estimate that does not span the search is not retried, so it costs
nothing there.

The region is tapered to be periodic, so the FFT's wrap-around meets no step. The result is centred on its
centroid, in pyops' convolution convention (blurred = fftconvolve(sharp, psf, "same")).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from pyops.ops.deconv import fft as fftmod
from pyops.ops.deconv.psf import normalize
from pyops.ops.deconv.rl import noise_sigma

LAMBDA = 4e-3  # L0 weight for [0, 1] data (Pan et al.)
LAMBDA_MIN = 1e-4
LAMBDA_DECAY = 1.1  # λ ← λ / this after every pass, from LAMBDA again at each scale
WEIGHT_SIGMA = 25.0  # kernel-step low-pass width in px per unit of noise σ (measured on Levin + noise)
WEIGHT_MIN = 0.6  # its least width in px (bench/blind.py, Levin and the varied set: 0.45 and 0.75 are worse)
KERNEL_WEIGHT = 0.5  # γ, tuned on Levin et al. 2009 (2.0 in Pan et al.'s code)
RETRY_FROM = 5  # coarsest scale of the retry (Levin im4, kernels 4, 7, 8: ratios 4.6, 2.2, 3.1; from 7 px 7.3, 7.7, 48)
PASSES = 10  # image/kernel alternations per scale
BETA_MAX = 1e5
CG_ITERATIONS = 20
THRESHOLD = 0.05  # kernel values below this fraction of the peak are noise
SPECK = 0.1  # connected parts of the kernel with less mass than this are removed


def pyramid(size: int, smallest: int = 3) -> list[int]:
    """Odd kernel sizes coarse to fine, each √2 larger, from `smallest` px up to `size`."""
    sizes = [size]
    while sizes[-1] > smallest:
        s = math.ceil(sizes[-1] / math.sqrt(2))
        s += 1 - s % 2
        sizes.append(max(min(s, sizes[-1] - 2), smallest))
    return sizes[::-1]


def _grad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Periodic forward differences."""
    return np.roll(x, -1, 1) - x, np.roll(x, -1, 0) - x


@dataclass
class Blurred:
    """The blurred region at one scale and the spectra every pass at that scale reuses."""

    f: np.ndarray  # tapered to be periodic, float32
    fft: object
    weight: np.ndarray  # the kernel step's weight per frequency (rfft grid)
    spectrum: np.ndarray = field(init=False)
    dx: np.ndarray = field(init=False)  # transfer functions of the forward differences
    dy: np.ndarray = field(init=False)
    grad_spectra: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.spectrum = self.fft.rfft(self.f)
        d = np.zeros((2, *self.f.shape), np.float32)
        d[:, 0, 0] = -1
        d[0, 0, -1] = d[1, -1, 0] = 1  # convolution kernels of the forward differences
        self.dx, self.dy = self.fft.rfft(d[0]), self.fft.rfft(d[1])
        self.grad_spectra = tuple(self.fft.rfft(g) for g in _grad(self.f))


def latent(b: Blurred, kernel: np.ndarray, lam: float) -> np.ndarray:
    """The sharp image under an L0 gradient prior (Xu et al. 2013), by half-quadratic splitting."""
    fft = b.fft
    k_otf = fftmod.otf(kernel.astype(np.float32), b.f.shape, fft)
    num0 = np.conj(k_otf) * b.spectrum
    den_k = np.abs(k_otf) ** 2
    den_d = np.abs(b.dx) ** 2 + np.abs(b.dy) ** 2
    u, beta = b.f, 2 * lam
    while beta < BETA_MAX:
        h, v = _grad(u)
        small = h * h + v * v < lam / beta
        h[small] = 0
        v[small] = 0
        num = num0 + beta * (np.conj(b.dx) * fft.rfft(h) + np.conj(b.dy) * fft.rfft(v))
        u = fft.irfft(num / (den_k + beta * den_d))
        beta *= 2
    return u


def _crop_centre(full: np.ndarray, size: int) -> np.ndarray:
    r = size // 2
    return np.roll(full, (r, r), axis=(0, 1))[:size, :size]


def kernel_step(u: np.ndarray, b: Blurred, k0: np.ndarray) -> np.ndarray:
    """Least-squares kernel on the gradients, min Σ_∂ ‖W(∂u ∗ k − ∂f)‖² + γ‖k‖², size of `k0`, by conjugate
    gradients from `k0` (Pan et al.'s estimate_psf). The normal operator is a convolution with the gradients'
    autocorrelation on the (2·size − 1)² lags, so each CG step costs a small convolution, not full-size FFTs.
    W is `b.weight` in the Fourier domain (frequencies where noise dominates count less)."""
    fft, size = b.fft, k0.shape[0]
    ux, uy = (fft.rfft(g) for g in _grad(u))
    fx, fy = b.grad_spectra
    gram = fft.irfft(((np.abs(ux) ** 2 + np.abs(uy) ** 2) * b.weight).astype(np.complex64))
    auto = _crop_centre(gram, 2 * size - 1).astype(np.float64)

    def normal(k: np.ndarray) -> np.ndarray:
        return fftconvolve(auto, k, mode="valid") + KERNEL_WEIGHT * k

    rhs = _crop_centre(fft.irfft((np.conj(ux) * fx + np.conj(uy) * fy) * b.weight), size).astype(np.float64)
    x = k0.astype(np.float64)
    r = rhs - normal(x)
    p = r.copy()
    rs = float((r * r).sum())
    for _ in range(CG_ITERATIONS):
        ap = normal(p)
        alpha = rs / max(float((p * ap).sum()), 1e-30)
        x += alpha * p
        r -= alpha * ap
        rs_new = float((r * r).sum())
        if rs_new < 1e-16 * max(float((rhs * rhs).sum()), 1e-30):
            break
        p = r + rs_new / rs * p
        rs = rs_new
    return x


def project(k: np.ndarray) -> np.ndarray:
    """Onto {k ≥ 0, Σk = 1}, without the faint floor and the specks a least-squares kernel carries."""
    k = np.maximum(k, 0)
    if k.sum() <= 0:
        return np.full_like(k, 1.0 / k.size)
    k = np.where(k < THRESHOLD * k.max(), 0, k / k.sum())
    parts, n = ndimage.label(k > 0, structure=np.ones((3, 3)))
    if n > 1:
        mass = ndimage.sum(k, parts, index=np.arange(1, n + 1))
        k[np.isin(parts, 1 + np.flatnonzero(mass < SPECK))] = 0
    return k / k.sum()


def centre(k: np.ndarray) -> np.ndarray:
    """Move the kernel (whole pixels, no wrap-around) so its centroid is at the centre."""
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    dy = int(round(k.shape[0] // 2 - (k * yy).sum() / k.sum()))
    dx = int(round(k.shape[1] // 2 - (k * xx).sum() / k.sum()))
    return ndimage.shift(k, (dy, dx), order=0, mode="constant")


def _upsample(k: np.ndarray, size: int) -> np.ndarray:
    z = np.maximum(ndimage.zoom(k, size / k.shape[0], order=1), 0)[:size, :size]
    out = np.zeros((size, size))
    out[: z.shape[0], : z.shape[1]] = z
    return centre(out / max(out.sum(), 1e-12))


def crop_to_support(k: np.ndarray, margin: int = 2) -> np.ndarray:
    """The smallest centred odd square holding every non-zero value (plus `margin`)."""
    c = k.shape[0] // 2
    ys, xs = np.nonzero(k)
    if ys.size == 0:
        return k
    r = min(c, max(np.abs(ys - c).max(), np.abs(xs - c).max()) + margin)
    return k[c - r: c + r + 1, c - r: c + r + 1]


def _downscale(f: np.ndarray, scale: float) -> np.ndarray:
    """Bilinear resampling by `scale` ≤ 1 after a Gaussian anti-alias filter (σ = 0.5/scale − 0.5 px), which also
    averages the noise down at the coarse scales."""
    if scale >= 1:
        return f
    return ndimage.zoom(ndimage.gaussian_filter(f, max(0.5 / scale - 0.5, 0)), scale, order=1)


def _noise_gain(scale: float) -> float:
    """How much _downscale lowers white noise: a Gaussian of σ px keeps 1/(2√π σ) of its std (measuring the noise
    on the coarse image would count fine texture as noise)."""
    if scale >= 1:
        return 1.0
    return min(1.0, 1 / (2 * math.sqrt(math.pi) * (0.5 / scale - 0.5)))


def _extent(k: np.ndarray) -> tuple[int, int]:
    """Height and width of the kernel's support."""
    ys, xs = np.nonzero(k)
    return (int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1) if ys.size else (0, 0)


def _spans(k: np.ndarray) -> bool:
    """Whether the kernel's support reaches across the whole search (less 2 px)."""
    return max(_extent(k)) >= k.shape[0] - 2


def _coarse_to_fine(f: np.ndarray, size: int, smallest: int, noise: float,
                    progress: Callable[[float, str], None] | None, backend: str) -> tuple[np.ndarray, int, str]:
    """Alternate image and kernel steps at every scale of pyramid(size, smallest), on the [0, 1] region `f`.
    Returns (kernel, number of scales, FFT backend name)."""
    sizes = pyramid(size, smallest)
    done, total = 0, sum(s * s for s in sizes)
    k = None
    for ks in sizes:
        fs = _downscale(f, ks / size)
        sigma = noise * _noise_gain(ks / size)
        if k is None:
            k = np.zeros((ks, ks))
            k[ks // 2, ks // 2 - 1: ks // 2 + 2] = 1 / 3
        else:
            k = _upsample(k, ks)
        pad = (ks, ks)
        shape = (fftmod.good_size(fs.shape[0] + 2 * ks), fftmod.good_size(fs.shape[1] + 2 * ks))
        fft = fftmod.plan(shape, backend)
        blurred = Blurred(fftmod.taper_pad(fs.astype(np.float32), shape, pad), fft, weight(shape, sigma))
        lam = LAMBDA
        for i in range(PASSES):
            if progress:
                progress((done + ks * ks * i / PASSES) / total,
                         f"estimating the PSF{' again' if smallest > 3 else ''}: {ks}×{ks} px scale")
            u = latent(blurred, k, max(lam, LAMBDA_MIN))
            k = project(kernel_step(u, blurred, k))
            lam = lam / LAMBDA_DECAY
        done += ks * ks
    return k, len(sizes), fft.name


def estimate(gray: np.ndarray, size: int, progress: Callable[[float, str], None] | None = None,
             backend: str = "auto") -> tuple[np.ndarray, dict]:
    """Estimate an odd size×size PSF from the grey region `gray` (linear, any scale). Returns (psf, info)."""
    f = np.asarray(gray, np.float64)
    lo, hi = np.percentile(f, [0.1, 99.9])
    f = np.clip((f - lo) / max(hi - lo, 1e-12), 0, 1)  # λ is for [0, 1] data
    size = int(size) | 1
    noise = noise_sigma(f)
    shown = [0.0]

    def first(fraction: float, message: str) -> None:
        shown[0] = fraction
        progress(fraction, message)

    k, scales, fft_name = _coarse_to_fine(f, size, 3, noise, progress and first, backend)
    if _spans(k) and size > RETRY_FROM:
        def again(fraction: float, message: str) -> None:  # on from where the first run stopped: never back
            progress(shown[0] + (1 - shown[0]) * fraction, message)

        k2, scales2, _ = _coarse_to_fine(f, size, RETRY_FROM, noise, progress and again, backend)
        if math.prod(_extent(k2)) < math.prod(_extent(k)):
            k, scales = k2, scales2
    psf = normalize(centre(k))
    info = {"scales": scales, "fft": fft_name, "noise_sigma": round(noise, 6)}
    if _spans(k):
        info["notes"] = [f"the blur found spans the whole {size}×{size} px search: either it is larger (try a larger "
                         "size) or the estimate failed (a failed kernel doubles edges when deconvolved: check it with "
                         "`pyops psf show`, or choose a region with sharp edges in several directions)"]
    return psf, info


def weight(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The kernel step's frequency weight: a Gaussian low-pass whose width follows the noise, and is at least
    WEIGHT_MIN px even on a clean image (the L0 latent's staircase edges do not match the blurred image at the
    highest frequencies, so they would mislead the kernel there)."""
    s = max(WEIGHT_SIGMA * sigma, WEIGHT_MIN)
    wy = np.fft.fftfreq(shape[0])[:, None]
    wx = np.fft.rfftfreq(shape[1])[None]
    return np.exp(-(wx ** 2 + wy ** 2) * (2 * np.pi * s) ** 2).astype(np.float32)

