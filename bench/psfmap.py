"""PSF maps benchmark: what a map of the zones' kernels gains over the best single PSF, at several noise levels,
and what it costs — on the scenes of tests/test_psfmap.py (1152×768, blurred by a 16×16-patch EFF model):

- lens softness (σ 0.8 px at the centre → 3 px in the corners), 3×3 map of the true zone kernels, against the best
  of five single Gaussians (σ 1.0 … 2.2);
- a camera turning 0.6° while drifting 3.6 px, 6×6 map, against the centre's and the mean kernel;
- the star field with coma: `psf_estimate --method stars --grid 3x3` against the one PSF of the frame
  (correlation with each zone's true coma), and the time of each estimate.

Every deconvolution is a whole `pyops.run("deconvolve", …)` call with the defaults (stop=auto, at most 50
iterations); one JSON line per case with the PSNRs, the iterations and tiles that ran, and the time of the map's
call over the single PSF's (same run).

    .venv/bin/python bench/psfmap.py"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyops
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv import psfmap
from tests.test_psfmap import (H, W, coma_kernel, correlation, lens_sigma, noisy, photo, psnr, rotation_kernel,
                               star_field, true_map, varying_blur)


def deconvolve(image: np.ndarray, psf: np.ndarray) -> tuple[np.ndarray, dict, float]:
    start = time.perf_counter()
    u, info = pyops.run("deconvolve", image, psf=psf, return_info=True)
    return u, info, time.perf_counter() - start


def compare(name: str, sharp: np.ndarray, blurred: np.ndarray, m: np.ndarray, singles: dict[str, np.ndarray]) -> None:
    u, info, t_map = deconvolve(blurred, m)
    runs = {label: deconvolve(blurred, k) for label, k in singles.items()}
    best = max(runs, key=lambda label: psnr(runs[label][0], sharp))
    print(json.dumps({
        "case": name, "grid": list(m.shape[:2]), "blurred_db": round(psnr(blurred, sharp), 2),
        "map_db": round(psnr(u, sharp), 2), "map_iterations": info["iterations"], "map_tiles": info["tiles"],
        "singles_db": {label: round(psnr(r[0], sharp), 2) for label, r in runs.items()},
        "best_single": best, "gain_db": round(psnr(u, sharp) - psnr(runs[best][0], sharp), 2),
        "single_iterations": runs[best][1]["iterations"], "single_tiles": runs[best][1].get("tiles", 1),
        "time_map_over_single": round(t_map / runs[best][2], 2)}), flush=True)


def main() -> None:
    sharp = photo()
    print(f"scenes {W}×{H} px", flush=True)
    lens = varying_blur(sharp, lambda y, x: psfmod.gaussian(lens_sigma(y, x), 21))
    lens_map = true_map(lambda y, x: psfmod.gaussian(lens_sigma(y, x), 21), 3)
    for peak in (2000, 20000, 200000):
        compare(f"lens softness, {peak} e-", sharp, noisy(lens, peak), lens_map,
                {f"gaussian {s}": psfmod.gaussian(s, 21) for s in (1.0, 1.3, 1.6, 1.9, 2.2)})
    turn = varying_blur(sharp, rotation_kernel)
    turn_map = true_map(rotation_kernel, 6)
    for peak in (2000, 10000):
        compare(f"camera turn 0.6°, {peak} e-", sharp, noisy(turn, peak), turn_map,
                {"centre": rotation_kernel(0.5, 0.5), "mean": psfmod.normalize(turn_map.mean(axis=(0, 1)))})
    field = star_field()
    start = time.perf_counter()
    m = pyops.run("psf_estimate", field, method="stars", grid="3x3")
    t_map = time.perf_counter() - start
    start = time.perf_counter()
    one = pyops.run("psf_estimate", field, method="stars")
    t_one = time.perf_counter() - start
    zones = psfmap.zones(H, W, 3, 3)
    truth = [psfmod.normalize_any(coma_kernel((y + zh / 2) / H, (x + zw / 2) / W)[None, None])[0, 0]
             for x, y, zw, zh in zones]
    print(json.dumps({"case": "coma star field, stars 3x3",
                      "zone_correlation": [round(correlation(t, m[n // 3, n % 3]), 3) for n, t in enumerate(truth)],
                      "one_psf_correlation": [round(correlation(t, one), 3) for t in truth],
                      "estimate_time_map_over_one": round(t_map / t_one, 2)}), flush=True)


if __name__ == "__main__":
    main()
