"""`pyops psf show`: the kernel enlarged, with its horizontal, vertical and radial profiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def render(kernel: np.ndarray, title: str, path: Path) -> None:
    """Write a PNG: the kernel (nearest-neighbour, so every pixel shows) and its profiles through the centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.asarray(kernel, np.float64)
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    r = np.hypot(yy - cy, xx - cx)
    rings = np.bincount(np.round(r).astype(int).ravel(), weights=k.ravel())
    counts = np.bincount(np.round(r).astype(int).ravel())
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    ax[0].imshow(k, cmap="magma", interpolation="nearest")
    ax[0].set_title(f"{title}\n{k.shape[1]}×{k.shape[0]} px, sum {k.sum():.3f}", fontsize=9, wrap=True)
    ax[0].axis("off")
    ax[1].plot(np.arange(k.shape[1]) - cx, k[cy], label="horizontal (through centre)")
    ax[1].plot(np.arange(k.shape[0]) - cy, k[:, cx], label="vertical (through centre)")
    ax[1].plot(np.arange(len(rings)), rings / np.maximum(counts, 1), label="radial mean")
    ax[1].set_xlabel("pixels from centre")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
