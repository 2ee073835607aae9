"""Tiled deconvolution: memory bounded by the tile, not the image.

The image is cut into cores of at most TILE×TILE px; each core is deconvolved with `reach` px of image around
it — a blend zone of BLEND px, then context whose result is thrown away, so the tile's own padded border never
reaches the core — and the results are blended across the core boundaries with raised-cosine weights that sum to
one (a partition of unity): the overlap-add scheme of sectioned deconvolution (Trussell & Hunt, "Sectioned
methods for image restoration", IEEE Trans. ASSP 26, 1978), here with windows instead of a
hard cut so no seam shows.

Every tile must run the same iterations with the same λ, or neighbours would stop at different points and the
seams would show. The noise model and λ come from the whole image, or for an image taller than SAMPLE_BANDS ×
SAMPLE_ROWS rows from that many bands of rows spread over it (the noise estimate samples rows anyway); the
automatic stop is decided on one probe tile — the one whose core has the most detail, where sharpening matters
and where iterations add noise first — and every tile then runs that many iterations with the λ the probe ended
with (raised by the model check when the kernel does not fit) and the probe's Biggs–Andrews extrapolations,
iteration by iteration (each tile's own would differ, and so would their paths). The padding at the image's
borders fades to the image's mean, as a whole-image run's does. An image that fits in one tile is deconvolved
whole, exactly as before.

The image is read a tile at a time through a `Reader` and the result leaves a band of finished rows at a time
through a `Writer` (`stream`), so neither needs to be in memory: pyops streams large TIFFs from and to disk this
way (pyops.io.stream); `deconvolve` is the same on arrays. Each tile after the probe is a pure function of a `Tile`
(where to read it and the shared run), so the tiles can run on Dask workers (`DaskPool`) that read the file
themselves, while this process blends and writes.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable, Iterator

import numpy as np

from pyops.ops.deconv import psfmap, rl

TILE = 1280  # core side in px: a ≈ 1400² RGB tile's working set is ≈ 230 MB (rl: 7 planes per channel + 7 shared)
BLEND = 16  # px on each side of a core boundary where two tiles are cross-faded
MARGIN_MIN = 32  # px of image beyond the blend zone whose result is discarded, at least…
MARGIN_KERNELS = 3  # …and this many kernel sizes (RL's reach grows with the iterations; measured in tests)
SAMPLE_BANDS, SAMPLE_ROWS = 64, 32  # the noise model and λ of a taller image come from this many bands of rows

# (r0, r1, c0, c1) → the image's rows r0…r1 and columns c0…c1, float32 H×W×C (linear; rl.observed is applied)
Reader = Callable[[int, int, int, int], np.ndarray]
# (r0, rows) → rows r0…r0 + len(rows) of the result, finished (float32 n×W×C, every column)
Writer = Callable[[int, np.ndarray], None]


def reach(kernel: int) -> int:
    """Px of image on each side of a core that its tile holds: the blend zone, then context whose result is
    discarded, for a kernel of `kernel` px."""
    return BLEND + max(MARGIN_MIN, MARGIN_KERNELS * kernel)


def extent(n: int, kernel: int, tile: int | None = None) -> int:
    """The largest tile along a side of n px (core and context on both sides) for a kernel of `kernel` px, in
    tiles of `tile` (default TILE)."""
    bounds = cores(n, tile or TILE)
    if len(bounds) == 2:
        return n
    return min(n, max(b - a for a, b in itertools.pairwise(bounds)) + 2 * reach(kernel))


def cores(n: int, tile: int) -> list[int]:
    """Boundaries 0 = c₀ < c₁ < … < c_k = n of k equal cores of at most `tile` px."""
    k = max(1, math.ceil(n / tile))
    return [round(i * n / k) for i in range(k + 1)]


def weights(bounds: list[int], i: int, lo: int, hi: int) -> np.ndarray:
    """The blending weight of core i (between bounds[i] and bounds[i + 1]) over the tile's rows (or columns)
    lo…hi."""
    t = np.arange(lo, hi, dtype=np.float64)
    w = np.ones(hi - lo)
    if i > 0:
        w *= _rise(t, bounds[i])
    if i + 2 < len(bounds):
        w *= 1 - _rise(t, bounds[i + 1])
    return w.astype(np.float32)


def _rise(t: np.ndarray, at: int) -> np.ndarray:
    """0 before at − BLEND, 1 from at + BLEND, a raised cosine between."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip((t - (at - BLEND) + 0.5) / (2 * BLEND), 0, 1))


def deconvolve(image: np.ndarray, psf: np.ndarray, opts: rl.Options, progress: Callable[[float, str], None] | None = None,
               tile: int | None = None) -> tuple[np.ndarray, dict]:
    """rl.deconvolve in tiles of at most `tile`² px (default TILE; plus margins): the same arguments and result."""
    read, shape, write, result = array_io(image)
    info = stream(read, shape, psf, opts, write, progress, tile)
    return result(), info


def array_io(image: np.ndarray) -> tuple[Reader, tuple[int, int, int], Writer, Callable[[], np.ndarray]]:
    """`stream` on an array: (a Reader of it, its H×W×C shape, a Writer that assembles the result, and a function
    that returns the result — H×W like the image if it is, or H×W×C with the channels written)."""
    x = np.asarray(image)
    x3 = x[..., None] if x.ndim == 2 else x
    out = None

    def write(r0: int, rows: np.ndarray) -> None:
        nonlocal out
        if out is None and len(rows) == len(x3):  # the whole result at once (one tile, or one row of tiles)
            out = rows
            return
        if out is None:
            out = np.empty(x3.shape[:2] + rows.shape[2:], np.float32)
        out[r0:r0 + len(rows)] = rows

    return (lambda r0, r1, c0, c1: x3[r0:r1, c0:c1]), x3.shape, write, lambda: out[..., 0] if x.ndim == 2 else out


def stream(read: Reader, shape: tuple[int, int, int], psf: np.ndarray, opts: rl.Options, write: Writer,
           progress: Callable[[float, str], None] | None = None, tile: int | None = None,
           pool: Pool | None = None) -> dict:
    """Deconvolve the H×W×C image `read` gives, tile by tile, handing the result to `write` a band of rows at a
    time (top to bottom): at most one tile, one band of TILE + 2·BLEND rows and the statistics' sample in memory.
    `psf` is a kernel, or a PSF map whose kernel at each tile's centre deconvolves that tile (psfmap). The tiles
    after the probe run here, or on the workers of a `pool` (DaskPool), each reading its own tile. Returns rl.run's
    info, with the tiles'."""
    h, w, nc = shape
    tile = psfmap.tile_side(psf, h, w, tile or TILE)
    rows, cols = cores(h, tile), cores(w, tile)
    if len(rows) == 2 and len(cols) == 2:
        x, clipped, model, lam = rl.prepare(read(0, h, 0, w), opts)
        out, info = rl.run(x, clipped, psfmap.kernel_at(psf, 0.5, 0.5), model, lam, opts, progress)
        write(0, out)
        return info
    r = reach(max(psf.shape[-2:]))
    boxes = [(i, j, max(rows[i] - r, 0), min(rows[i + 1] + r, h), max(cols[j] - r, 0), min(cols[j + 1] + r, w))
             for i in range(len(rows) - 1) for j in range(len(cols) - 1)]
    n = len(boxes)
    whites, levels, detail = _survey(read, rows, cols, nc, opts.white)
    sampled = h > SAMPLE_BANDS * SAMPLE_ROWS
    _, _, model, lam = rl.prepare(_sample(read, h, w), opts, whites, SAMPLE_ROWS if sampled else None)
    probe = boxes[int(np.argmax(detail))]

    def kernel(i: int, j: int) -> np.ndarray:
        """The PSF at the centre of core (i, j)."""
        return psfmap.kernel_at(psf, (rows[i] + rows[i + 1]) / (2 * h), (cols[j] + cols[j + 1]) / (2 * w))

    def core(i: int, j: int) -> tuple[int, int, int, int]:
        return rows[i], rows[i + 1], cols[j], cols[j + 1]

    def part(k: int, label: str) -> Callable[[float, str], None] | None:
        if progress is None:
            return None
        return lambda f, msg: progress((k + f) / (n + 1), f"{label}: {msg}")

    alphas: list[float] = []
    i, j, r0, r1, c0, c1 = probe
    t, clipped, probe_clipped = _cut(read, whites, probe[2:], core(i, j))
    u_probe, info = rl.run(t, clipped, kernel(i, j), model, lam, opts,
                           part(0, f"probe tile ({c0}, {r0}) {c1 - c0}×{r1 - r0}"), levels, record=alphas)
    del t, clipped
    fixed = dataclasses.replace(opts, stop="none", iterations=max(info["iterations"], 1),
                                regularization=info["regularization"])
    reuse = info["regularization"] == lam  # the probe ran the very iterations every tile runs
    jobs = [Tile(read, whites, box[2:], core(*box[:2]), kernel(*box[:2]), model, fixed, levels, alphas)
            for box in boxes if not (reuse and box == probe)]
    if pool is None:
        results = (tile_result(job, part(k + 1, f"tile {k + 1} of {n}")) for k, job in enumerate(jobs))
    else:
        results = pool(tile_result, jobs)
    residual, n_clipped = 0.0, 0
    band, carry = None, None
    for k, (i, j, r0, r1, c0, c1) in enumerate(boxes):
        # the rows tile row i weighs (weights are 0 outside them), as one band of the result
        lo, hi = max(rows[i] - BLEND, 0), min(rows[i + 1] + BLEND, h)
        if j == 0:
            band = np.zeros((hi - lo, w, nc), np.float32)
            if carry is not None:  # the overlap with the band above, which it already weighed
                band[:len(carry)] += carry
        if reuse and (i, j) == probe[:2]:
            u, t_residual, t_clipped = u_probe, info["residual"] or 0.0, probe_clipped
        else:
            u, t_residual, t_clipped = next(results)
            if pool is not None and progress is not None:
                progress((k + 1) / (n + 1), f"tile {k + 1} of {n}")
        n_clipped += t_clipped
        wr, wc = weights(rows, i, lo, hi), weights(cols, j, c0, c1)
        band[:, c0:c1] += np.outer(wr, wc)[..., None] * u[lo - r0:hi - r0]
        del u
        residual += t_residual * float(wr.sum()) * float(wc.sum())
        if j == len(cols) - 2:  # the band is done: write the rows no tile below weighs
            done = (max(rows[i + 1] - BLEND, 0) if i + 2 < len(rows) else h) - lo
            write(lo, band[:done])
            carry = band[done:].copy()
    residual /= h * w
    r0, r1, c0, c1 = probe[2:]
    return {**info, "clipped_pixels": n_clipped, "tiles": n, "tile_size": tile,
            **({"tiles_on": pool.where} if pool is not None else {}),
            "probe_tile": [c0, r0, c1 - c0, r1 - r0],  # x, y, width, height
            "stopped": f"probe tile: {info['stopped']}; every tile ran {fixed.iterations} iterations",
            "residual": residual, "notes": rl.residual_notes(residual, model)}


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile's work, all a worker needs: where to read it, the core it counts clipped pixels in, and the run
    every tile shares (its own kernel, the noise model, fixed iterations and λ, levels, the probe's α)."""
    read: Reader
    whites: np.ndarray
    box: tuple[int, int, int, int]  # r0, r1, c0, c1 of the tile
    core: tuple[int, int, int, int]  # r0, r1, c0, c1 of its core
    kernel: np.ndarray
    model: object
    opts: rl.Options
    levels: list[float]
    alphas: list[float]


def tile_result(job: Tile, progress: Callable[[float, str], None] | None = None) -> tuple[np.ndarray, float, int]:
    """Deconvolve one tile: (its result, its residual, its core's clipped pixels)."""
    t, clipped, n_clipped = _cut(job.read, job.whites, job.box, job.core)
    u, info = rl.run(t, clipped, job.kernel, job.model, job.opts.regularization, job.opts, progress, job.levels,
                     job.alphas)
    return u, info["residual"] or 0.0, n_clipped


def _cut(read: Reader, whites: np.ndarray, box: tuple[int, int, int, int],
         core: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """A tile as rl.prepare makes the whole image: float32 ≥ 0, its clipped pixels, and how many are in its core
    (box and core: r0, r1, c0, c1)."""
    t = rl.observed(read(*box))
    clipped = rl.clipped_mask(t, whites)
    (r0, _, c0, _), (a, b, c, d) = box, core
    return t, clipped, int(clipped[a - r0:b - r0, c - c0:d - c0].sum())


class DaskPool:
    """Tiles on a Dask cluster: `pool(func, jobs)` submits every job to the client's workers and yields the
    results in the jobs' order, each released from the cluster once taken. A worker that dies has its tiles
    computed again elsewhere by the scheduler (the jobs are pure), so the result is whole or there is none."""

    def __init__(self, client):
        self.client = client
        self.where = f"dask {client.scheduler.address}"

    def __call__(self, func: Callable, jobs: list) -> Iterator:
        futures = self.client.map(func, jobs, pure=False)
        try:
            for k in range(len(futures)):
                yield futures[k].result()
                futures[k] = None
        finally:
            self.client.cancel([f for f in futures if f is not None])


Pool = Callable[[Callable, list], Iterator]


def _survey(read: Reader, rows: list[int], cols: list[int], nc: int,
            white: float | None) -> tuple[np.ndarray, list[float], list[float]]:
    """One pass over the cores: the white level of each channel (rl.white_levels, over the whole image), each
    channel's mean (what the padding at the image's border fades to) and each core's detail (the probe's)."""
    top, total, detail = np.zeros(nc), np.zeros(nc), []
    boxes = [(rows[i], rows[i + 1], cols[j], cols[j + 1]) for i in range(len(rows) - 1) for j in range(len(cols) - 1)]
    for box in boxes:
        t = rl.observed(read(*box))
        top = np.maximum(top, t.max(axis=(0, 1)))
        total += t.sum(axis=(0, 1), dtype=np.float64)
        detail.append(_detail(t))
    whites = np.full(nc, float(white)) if white is not None else np.ones(nc)
    for c in range(nc):
        if white is None and rl.PLATEAU_MIN < top[c] < 1.0:  # a plateau below 1 is the white level
            count = 0
            for box in boxes:
                count += int(np.count_nonzero(rl.observed(read(*box))[..., c] >= rl.PLATEAU * top[c]))
                if count >= rl.PLATEAU_PIXELS:
                    whites[c] = top[c]
                    break
    return whites, [float(v) for v in total / (rows[-1] * cols[-1])], detail


def _sample(read: Reader, h: int, w: int) -> np.ndarray:
    """The image, or for one taller than SAMPLE_BANDS × SAMPLE_ROWS rows that many bands of rows spread evenly
    over it (each starting on an even row, as the noise estimate's 2×2 blocks and Bayer phases expect)."""
    if h <= SAMPLE_BANDS * SAMPLE_ROWS:  # (a view, for an array: rl.prepare copies it)
        return read(0, h, 0, w)
    starts = np.linspace(0, h - SAMPLE_ROWS, SAMPLE_BANDS).astype(int) // 2 * 2
    return np.concatenate([read(s, s + SAMPLE_ROWS, 0, w) for s in starts])


def _detail(x: np.ndarray) -> float:
    """Mean squared gradient: how much there is to sharpen."""
    return float(np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2))
