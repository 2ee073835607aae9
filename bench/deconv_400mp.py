"""Benchmark: `pyops run deconvolve` on a 20000×20000 16-bit mono TIFF (400 MP, uncompressed as stackers and
stitchers write them, or with --compressed in 512×512 deflate tiles), 10 RL-TV iterations — peak resident memory of the pyops process (goal of issue 12: ≤ 2 GB;
the image alone is 0.8 GB as integers, 1.6 GB as floats) and wall time, with the iterations that ran and the
tiles, read back from the result's provenance. The input is generated a band at a time (a smooth random
texture with Poisson-like noise) into a temporary folder by another process — a child's peak (ru_maxrss) starts
from its parent's memory at the fork, so this one stays small — and removed afterwards with the result.

    .venv/bin/python bench/deconv_400mp.py [--compressed] [SIDE]"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

BAND = 200  # rows generated at a time: the generating process stays far below the one measured
TILE = 512  # the compressed file's tiles


def _band(rng: np.random.Generator, side: int, r0: int, r1: int) -> np.ndarray:
    """Rows r0:r1 of a smooth random texture with Poisson-like noise, as uint16."""
    x = np.arange(side) / side
    y = (np.arange(r0, r1) / side)[:, None]
    smooth = 0.45 + 0.2 * np.sin(40 * x + 7 * y) * np.cos(55 * y - 13 * x) + 0.1 * np.sin(900 * x * y + 300 * y)
    noisy = smooth + rng.normal(0, 1, smooth.shape) * np.sqrt(smooth / 2000)
    return np.clip(noisy * 65535, 0, 65535).astype(np.uint16)


def make(path: Path, side: int, compressed: bool) -> None:
    """A side×side uint16 TIFF written a band of rows at a time: uncompressed through a memory map, or in
    TILE×TILE deflate tiles with the horizontal predictor (as GDAL and some stackers write)."""
    rng = np.random.default_rng(0)
    if compressed:
        def tiles():
            for r in range(0, side, TILE):
                band = np.zeros((TILE, -(-side // TILE) * TILE), np.uint16)
                band[:min(TILE, side - r), :side] = _band(rng, side, r, min(r + TILE, side))
                yield from (band[:, c:c + TILE] for c in range(0, side, TILE))

        tifffile.imwrite(path, tiles(), shape=(side, side), dtype=np.uint16, photometric="minisblack",
                         tile=(TILE, TILE), compression="zlib", predictor=True)
        return
    mm = tifffile.memmap(path, shape=(side, side), dtype=np.uint16, photometric="minisblack")
    for r in range(0, side, BAND):
        mm[r:r + BAND] = _band(rng, side, r, min(r + BAND, side))
        mm.flush()
    del mm


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        make(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "compressed")
        return
    args = [a for a in sys.argv[1:] if a != "--compressed"]
    kind = "compressed" if "--compressed" in sys.argv else "uncompressed"
    side = int(args[0]) if args else 20000
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        src = Path(tmp) / "mosaic.tif"
        subprocess.run([sys.executable, __file__, "--make", str(src), str(side), kind], check=True)
        mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        t = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pyops", "run", "deconvolve", str(src), "--psf", "gaussian:sigma=1.5",
                              "--iterations", "10", "--stop", "none"], capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # the largest child: pyops
        if run.returncode:
            sys.exit(f"pyops failed:\n{run.stderr}")
        out = Path(tmp) / "mosaic_pyops-deconvolve.tif"
        import pyexiv2

        with pyexiv2.Image(str(out)) as im:
            info = json.loads(im.read_xmp()["Xmp.pyops.info"])
        with tifffile.TiffFile(out) as tif:
            shape = tif.pages[0].shape
        left = sorted(p.name for p in Path(tmp).iterdir() if p.name not in ("mosaic.tif", out.name))
        print(json.dumps({"bench": "deconvolve_400mp_tiff", "image": f"{side}x{side} uint16 mono {kind} TIFF",
                          "input_mb": round(src.stat().st_size / 1e6),
                          "megapixels": round(side * side / 1e6), "iterations_run": info["iterations"],
                          "tiles": info.get("tiles", 1), "output_shape": list(shape), "files_left_over": left,
                          "wall_s": round(wall, 1), "peak_rss_gb": round(peak, 2), "goal": "<= 2 GB",
                          "bench_process_gb": round(mine, 2)}))


if __name__ == "__main__":
    main()
