"""`pyops demo`: a synthetic, underexposed, noisy raw made here (no download), run through `twostop`,
with a before/after picture and the measured exposure and SNR gains."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pyops.color import luminance, rgb_to_xyz, srgb_encode
from pyops.io.dng import write_dng
from pyops.io.files import check_output_dir, write_atomic
from pyops.io.images import read_image
from pyops.io.raw import develop
from pyops.mosaic import RawMosaic
from pyops.process import process_file

BLACK, WHITE = 256, 4095
E_PER_DN, READ_NOISE_DN = 2.0, 2.0
EXPOSURE = 1 / 12  # scene white → 1/12 of the sensor's range: about 3.6 stops under
GREYS = (0.031, 0.09, 0.19, 0.36, 0.59, 0.9)
COLOURS = ((0.45, 0.19, 0.12), (0.16, 0.3, 0.52), (0.22, 0.42, 0.1), (0.62, 0.48, 0.05), (0.42, 0.1, 0.32),
           (0.1, 0.45, 0.45))
PATCH, GAP = 120, 24


def _patch_boxes(h: int, w: int) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """(y, x, size, size) of the grey and colour patches, aligned to 4 px so they bin cleanly."""
    x0 = (w - 6 * PATCH - 5 * GAP) // 2 // 4 * 4
    grey = [(h // 2 // 4 * 4, x0 + i * (PATCH + GAP), PATCH, PATCH) for i in range(6)]
    colour = [(h // 2 // 4 * 4 - PATCH - GAP, x0 + i * (PATCH + GAP), PATCH, PATCH) for i in range(6)]
    return grey, colour


def scene(h: int = 800, w: int = 1200) -> np.ndarray:
    """Linear sRGB reflectances: a lit gradient, a radial zone plate for detail, grey and colour patches."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (0.03 + 0.5 * xx / w)[..., None] * np.array([1.0, 0.95, 0.85], np.float32)
    r2 = ((yy - h * 0.8) ** 2 + (xx - w * 0.5) ** 2) / (0.12 * h) ** 2
    zone = r2 < 1
    img[zone] = (0.2 + 0.15 * np.cos(60 * r2[zone]))[..., None]
    grey, colour = _patch_boxes(h, w)
    for (y, x, s, t), v in zip(grey, GREYS):
        img[y:y + s, x:x + t] = v
    for (y, x, s, t), c in zip(colour, COLOURS):
        img[y:y + s, x:x + t] = c
    return img


def capture(reflectance: np.ndarray, rng: np.random.Generator) -> RawMosaic:
    """Expose an RGGB sensor whose RGB is linear sRGB: photon (Poisson) noise, read noise, black, 12 bits."""
    h, w, _ = reflectance.shape
    cfa = np.array([[0, 1], [1, 2]], np.uint8)
    site = np.take_along_axis(reflectance, np.tile(cfa, (h // 2, w // 2))[..., None].astype(np.intp), 2)[..., 0]
    electrons = rng.poisson(site * EXPOSURE * (WHITE - BLACK) * E_PER_DN)
    dn = electrons / E_PER_DN + rng.normal(0, READ_NOISE_DN, site.shape) + BLACK
    data = np.clip(np.round(dn), 0, WHITE).astype(np.uint16)
    return RawMosaic(data=data, cfa=cfa, black=np.full((2, 2), BLACK, np.float32), white=WHITE,
                     xyz_to_camera=np.linalg.inv(rgb_to_xyz("srgb")), make="pyops", model="synthetic sensor")


def _patch_stats(img: np.ndarray, boxes, scale: int) -> tuple[np.ndarray, np.ndarray]:
    y = luminance(img)
    means, snrs = [], []
    for (py, px, s, t) in boxes:
        m = 8 // scale
        a = y[py // scale + m:(py + s) // scale - m, px // scale + m:(px + t) // scale - m]
        means.append(a.mean())
        snrs.append(a.mean() / a.std())
    return np.array(means), np.array(snrs)


def _figure(before: np.ndarray, after: np.ndarray, ev: float, snr: float, crop: tuple[int, int, int, int],
            path: Path) -> None:
    """Top: both as developed. Middle: the same detail, the original pushed +2 EV in post vs the binned one
    (same brightness: the difference is noise). Bottom: luminance histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, x, h, w = crop
    fig, ax = plt.subplots(3, 2, figsize=(12, 11), gridspec_kw={"height_ratios": [3, 2.4, 1.2]})
    panels = (
        (before, f"before: underexposed raw, {before.shape[1]}×{before.shape[0]}", before[y:y + h, x:x + w] * 4,
         "before, pushed +2 EV in post (detail)"),
        (after, f"after twostop: {after.shape[1]}×{after.shape[0]}, {ev:+.2f} EV, SNR ×{snr:.2f}",
         after[y // 2:(y + h) // 2, x // 2:(x + w) // 2], "after twostop, as it comes (same detail)"),
    )
    for col, (img, title, detail, detail_title) in enumerate(panels):
        ax[0, col].imshow(srgb_encode(img))
        ax[0, col].set_title(title)
        ax[1, col].imshow(srgb_encode(detail), interpolation="nearest")
        ax[1, col].set_title(detail_title)
        for a in ax[:2, col]:
            a.axis("off")
        lum = luminance(img)
        ax[2, col].hist(np.log2(np.clip(lum[lum > 0], 2.0 ** -14, None)), bins=140, range=(-14, 1), color="0.3")
        ax[2, col].set_xlabel("luminance (EV below white)")
        ax[2, col].set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _numbered(stem: str, suffix: str):
    """Names `stem.suffix`, `stem_01.suffix`, … for write_atomic: a second demo keeps the first one's files."""
    return lambda n: f"{stem}{'' if n == 0 else f'_{n:02d}'}{suffix}"


def demo(out_dir: Path, seed: int = 2) -> int:
    """Write the synthetic raw, run twostop on it, print the measured gains, draw before/after. Nothing in
    `out_dir` is ever replaced (OutputError if it cannot be used)."""
    check_output_dir(out_dir).mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    refl = scene()
    mosaic = capture(refl, rng)
    raw_path = write_atomic(out_dir, _numbered("pyops-demo-underexposed", ".dng"), ".dng",
                            lambda tmp: write_dng(tmp, mosaic))
    result = process_file("twostop", {}, raw_path, out_dir)
    before = develop(raw_path)
    after = read_image(result.output).pixels
    grey, _ = _patch_boxes(*refl.shape[:2])
    m0, s0 = _patch_stats(before, grey, 1)
    m1, s1 = _patch_stats(after, grey, 2)
    usable = m1 < 0.75  # below the highlight shoulder
    ev = float(np.median(np.log2(m1[usable] / m0[usable])))
    snr = float(np.median(s1 / s0))
    gy, gx, _, _ = grey[1]
    figure = write_atomic(out_dir, _numbered("pyops-demo", ".png"), ".png",
                          lambda tmp: _figure(before, after, ev, snr, (gy - 40, gx - 40, 160, 240), tmp))
    print(f"raw (synthetic, {before.shape[1]}×{before.shape[0]}, grey 18 % at "
          f"{0.18 * EXPOSURE * 100:.1f} % of white): {raw_path}")
    print(f"twostop result: {result.output}")
    print(f"exposure gain: {ev:+.2f} EV (ideal {2 * math.log2(2):+.2f}), measured on {usable.sum()} grey patches")
    print(f"SNR gain: ×{snr:.2f} (ideal ×2.00), median of {len(grey)} grey patches "
          f"(SNR before {np.median(s0):.1f}, after {np.median(s1):.1f})")
    print(f"before/after picture: {figure}")
    return 0
