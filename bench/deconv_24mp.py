"""Benchmark: RL-TV on a 24 MP (6048×4032) RGB image, 30 iterations, colour (collaborative TV) and luminance
only — wall time and peak resident memory of this process (goals of issue 12 on a 2-core machine: ≤ 20 s and
≤ 1.2 GB; luminance only ≤ 8 s). The image is deconvolved in tiles (pyops.ops.deconv.tiles), as every image
larger than one; the whole-image run (one tile) is printed beside it for the ratio. The input is a smooth random
texture in 0.05–0.85 (no clipped pixels: white noise up to a plateau would be taken for thousands of clipped
specks). Each case runs in a fresh process so the peaks do not mix.

    .venv/bin/python bench/deconv_24mp.py"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from timing import texture


def _case(luminance_only: bool, tile: int) -> None:
    import pyops
    from pyops.ops.deconv import tiles

    img = texture(4032, 6048, 3)
    tiles.TILE = tile
    pyops.run("deconvolve", img[:64, :64], iterations=2)  # kernels loaded
    t = time.perf_counter()
    _, info = pyops.run("deconvolve", img, psf="gaussian:sigma=1.6", iterations=30, stop="none",
                        luminance_only=luminance_only, return_info=True)
    wall = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps({"bench": "rl_tv_24mp_30_iterations", "luminance_only": luminance_only,
                      "tiles": info.get("tiles", 1), "tile": tile, "iterations_run": info["iterations"],
                      "wall_s": round(wall, 1), "peak_rss_gb": round(peak_gb, 2), "fft": info["fft"],
                      "goal": "<= 8 s" if luminance_only else "<= 20 s and <= 1.2 GB"}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _case(sys.argv[1] == "luminance", int(sys.argv[2]))
    else:
        for mode in ("rgb", "luminance"):
            for tile in (1 << 20, 1280):  # whole image, then the default tiles
                subprocess.run([sys.executable, __file__, mode, str(tile)], check=True)
