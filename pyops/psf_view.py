"""`pyops psf show`: the kernel enlarged, with its horizontal, vertical and radial profiles; a PSF map as its
zones' kernels, each enlarged over its zone of the photo it was measured on."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

TITLE_CHARS = 90  # characters per title line: fits the 9-inch-wide figure at 9 pt, even in wide letters


THUMB = 720  # px: the long side of a map's backdrop


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(title: str, size: str) -> str:
    """The title wrapped by characters (file names have no spaces) so it is never cut off, then the size line."""
    return "\n".join((textwrap.wrap(title, TITLE_CHARS, break_on_hyphens=False) or [""]) + [size])


def render(kernel: np.ndarray, title: str, path: Path, backdrop: np.ndarray | None = None) -> None:
    """Write a PNG: the kernel (nearest-neighbour, so every pixel shows) and its profiles through the centre; for
    a PSF map, `render_map`."""
    if kernel.ndim == 4:
        render_map(kernel, title, path, backdrop)
        return
    plt = _pyplot()
    k = np.asarray(kernel, np.float64)
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    r = np.hypot(yy - cy, xx - cx)
    rings = np.bincount(np.round(r).astype(int).ravel(), weights=k.ravel())
    counts = np.bincount(np.round(r).astype(int).ravel())
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1, 1.3]}, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.1, h_pad=0.1)  # inches of margin: nothing touches the picture's edge
    fig.suptitle(_title(title, f"{k.shape[1]}×{k.shape[0]} px, sum {k.sum():.3f}"), fontsize=9)
    ax[0].imshow(k, cmap="magma", interpolation="nearest")
    ax[0].axis("off")
    ax[1].plot(np.arange(k.shape[1]) - cx, k[cy], label="horizontal (through centre)")
    ax[1].plot(np.arange(k.shape[0]) - cy, k[:, cx], label="vertical (through centre)")
    ax[1].plot(np.arange(len(rings)), rings / np.maximum(counts, 1), label="radial mean")
    ax[1].set_xlabel("pixels from centre")
    ax[1].legend()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def render_map(psf: np.ndarray, title: str, path: Path, backdrop: np.ndarray | None = None) -> None:
    """Write a PNG of a PSF map: each zone's kernel (scaled to its own peak) enlarged over its zone, on a grey
    thumbnail of `backdrop` (linear, H×W or H×W×C) with the zone boundaries, or on black without one."""
    from pyops.color import luminance, srgb_encode
    from pyops.ops.deconv.psfmap import zones

    plt = _pyplot()
    rows, cols, kh, kw = psf.shape
    if backdrop is None:
        h, w, thumb = rows * 100, cols * 100, np.zeros((rows, cols))
    else:
        x = np.asarray(backdrop, np.float32)
        grey = luminance(x[..., :3]) if x.ndim == 3 else x
        h, w = grey.shape
        step = max(1, max(h, w) // THUMB)
        thumb = srgb_encode(grey[::step, ::step])
    fig, ax = plt.subplots(figsize=(9, 9 * h / w + 0.6), layout="constrained")
    fig.suptitle(_title(title, f"{cols}×{rows} zones, kernels of {kw}×{kh} px, each enlarged over its zone"),
                 fontsize=9)
    ax.imshow(thumb, cmap="gray", vmin=0, vmax=1, extent=(0, w, h, 0), interpolation="bilinear")
    for (x, y, zw, zh), k in zip(zones(h, w, rows, cols), psf.reshape(-1, kh, kw)):
        half = 0.35 * min(zw, zh)
        cx, cy = x + zw / 2, y + zh / 2
        ax.imshow(k / max(float(k.max()), 1e-12), cmap="magma", vmin=0, vmax=1, interpolation="nearest",
                  extent=(cx - half, cx + half, cy + half, cy - half))
        ax.add_patch(plt.Rectangle((x, y), zw, zh, fill=False, edgecolor="white", linewidth=0.6, alpha=0.6))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    fig.savefig(path, dpi=80)
    plt.close(fig)
