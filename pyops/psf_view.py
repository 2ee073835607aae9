"""`pyops psf show`: the kernel enlarged, with its horizontal, vertical and radial profiles."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

TITLE_CHARS = 90  # characters per title line: fits the 9-inch-wide figure at 9 pt, even in wide letters


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
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1, 1.3]}, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.1, h_pad=0.1)  # inches of margin: nothing touches the picture's edge
    # the title spans the figure, wrapped by characters (file names have no spaces) so it is never cut off
    lines = textwrap.wrap(title, TITLE_CHARS, break_on_hyphens=False) or [""]
    fig.suptitle("\n".join(lines + [f"{k.shape[1]}×{k.shape[0]} px, sum {k.sum():.3f}"]), fontsize=9)
    ax[0].imshow(k, cmap="magma", interpolation="nearest")
    ax[0].axis("off")
    ax[1].plot(np.arange(k.shape[1]) - cx, k[cy], label="horizontal (through centre)")
    ax[1].plot(np.arange(k.shape[0]) - cy, k[:, cx], label="vertical (through centre)")
    ax[1].plot(np.arange(len(rings)), rings / np.maximum(counts, 1), label="radial mean")
    ax[1].set_xlabel("pixels from centre")
    ax[1].legend()
    fig.savefig(path, dpi=80)
    plt.close(fig)
