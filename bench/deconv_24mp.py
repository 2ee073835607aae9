"""Benchmark: RL-TV on a 24 MP (6048×4032) RGB image, 30 iterations, colour (collaborative TV) and luminance
only — wall time and peak resident memory of this process (goals on a 2-core machine: ≤ 30 s and ≤ 2.5 GB;
luminance only ≤ 10 s). Each case runs in a fresh process so the peaks do not mix.

    .venv/bin/python bench/deconv_24mp.py"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def _case(luminance_only: bool) -> None:
    import numpy as np

    import pyops

    rng = np.random.default_rng(0)
    img = (rng.random((4032, 6048, 3), dtype=np.float32) * 0.5 + 0.1).astype(np.float32)
    pyops.run("deconvolve", img[:64, :64], iterations=2)  # kernels loaded
    t = time.perf_counter()
    _, info = pyops.run("deconvolve", img, psf="gaussian:sigma=1.6", iterations=30, stop="none",
                        luminance_only=luminance_only, return_info=True)
    wall = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps({"bench": "rl_tv_24mp_rgb_30_iterations", "luminance_only": luminance_only,
                      "iterations_run": info["iterations"], "stopped": info["stopped"], "wall_s": round(wall, 1),
                      "peak_rss_gb": round(peak_gb, 2), "fft": info["fft"],
                      "goal": "<= 10 s" if luminance_only else "<= 30 s and <= 2.5 GB"}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _case(sys.argv[1] == "luminance")
    else:
        for mode in ("rgb", "luminance"):
            subprocess.run([sys.executable, __file__, mode], check=True)
