"""Shared by the benchmarks: the best (minimum) wall time of a few runs, the least disturbed by a noisy machine, and
the test texture of the deconvolution benchmarks."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def texture(h: int, w: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A smooth random texture in 0.05–0.85, float32 H×W (or H×W×C): no clipped pixels — uniform random pixels
    reach a plateau at their maximum, which deconvolution takes for thousands of clipped specks."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = np.stack([ndimage.gaussian_filter(rng.random((h, w), dtype=np.float32), 2.0) for _ in range(channels)], -1)
    img -= img.min()
    img *= 0.8 / img.max()
    img += 0.05
    return img if channels > 1 else img[..., 0]
