"""Non-blind deconvolution without hand-tuning, measured in one run (one JSON line per figure):

- sweep: scikit-image's bundled photos (grey and colour, linearised) and procedural scenes × Gaussian σ 2 / disk
  r 4 / motion 15 px blurs × Poisson peak 100 / 800 / 10 000 e⁻ + 2 e⁻ read noise (tests/test_deconvolve_auto.py).
  Per case: `auto` (λ and stop from the image's noise model, at most 150 iterations) against pyops' own oracle
  (best λ of 7 × iteration count ≤ 150) and against scikit-image's plain richardson_lucy at its best iteration
  count; with the iterations that actually ran. Summary: the share of cases within 0.2 dB of the oracle, the gap
  quantiles, and the cases below scikit-image; split into the scenes the λ rule was fitted on and the others;
- raw: demosaiced noise — scenes sampled on a Bayer mosaic with noise and developed by LibRaw's AHD, `auto`
  against the input and against λ from the finest band's variance as is (noise.demosaiced);
- ringing: the night scene with lamps clipped at white, and three mixed scenes (ellipses, lit windows, specular
  streaks, one-pixel stars) — ringing energy around them without ÷ with the mask.

    NUMBA_NUM_THREADS=1 .venv/bin/python bench/nonblind.py            # the whole sweep (~15 min on 2 cores)
    NUMBA_NUM_THREADS=1 .venv/bin/python bench/nonblind.py --quick    # 4 scenes"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_deconvolve_auto import (BLURS, PEAKS, SCENES, case, mixed_night, night_scene, oracle,  # noqa: E402
                                        psnr, raw_case, ringing_energy, skimage_rl_path)

from pyops.ops.deconv import noise as noisemod  # noqa: E402
from pyops.ops.deconv.rl import Options, deconvolve  # noqa: E402

FITTED_ON = ("camera", "coffee", "texture", "brick", "moon", "city", "chelsea")  # the λ rule's fit (rl.LAM_*)


def sweep(scenes) -> None:
    rows = []
    for name, blur_name, peak in itertools.product(scenes, BLURS, PEAKS):
        sharp, noisy, k = case(name, blur_name, peak)
        out, info = deconvolve(noisy, k, Options(iterations=150))
        ours = psnr(out, sharp)
        best, lam_best, it_best = oracle(noisy, k, sharp)
        sk_path = skimage_rl_path(noisy, k, sharp)
        sk_it = int(np.argmax(sk_path)) + 1
        row = {"bench": "nonblind_case", "scene": name, "blur": blur_name, "peak": peak,
               "fitted_on": name in FITTED_ON, "input_psnr": round(psnr(noisy, sharp), 2),
               "auto_psnr": round(ours, 2), "auto_iterations": info["iterations"],
               "auto_lambda": round(info["regularization"], 5), "stopped": info["stopped"],
               "oracle_psnr": round(best, 2), "oracle_lambda": lam_best, "oracle_iterations": it_best,
               "skimage_best_psnr": round(sk_path[sk_it - 1], 2), "skimage_best_iterations": sk_it,
               "gap_to_oracle_db": round(best - ours, 3), "over_skimage_db": round(ours - sk_path[sk_it - 1], 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for label, sel in (("all", rows), ("fitted_on", [r for r in rows if r["fitted_on"]]),
                       ("held_out", [r for r in rows if not r["fitted_on"]])):
        if not sel:
            continue
        gaps = np.array([r["gap_to_oracle_db"] for r in sel])
        over = np.array([r["over_skimage_db"] for r in sel])
        print(json.dumps({"bench": "nonblind_sweep", "set": label, "cases": len(sel),
                          "within_0.2_db_of_oracle": int(np.sum(gaps <= 0.2)),
                          "share_within_0.2_db": round(float(np.mean(gaps <= 0.2)), 3),
                          "gap_db_median": round(float(np.median(gaps)), 3),
                          "gap_db_p90": round(float(np.percentile(gaps, 90)), 3), "gap_db_max": round(float(gaps.max()), 3),
                          "below_skimage_best": int(np.sum(over < 0)), "over_skimage_db_min": round(float(over.min()), 3),
                          "goal": ">= 90 % within 0.2 dB, 0 below scikit-image"}), flush=True)


def ringing() -> None:
    scenes = [("lamps", night_scene, ("rl_tv", "rl"))] + [
        (f"mixed_{seed}", lambda k, seed=seed: mixed_night(k, seed), ("rl_tv",)) for seed in (1, 2, 3)]
    for (name, make, methods), blur_name in ((sc, b) for sc in scenes for b in BLURS):
        k = BLURS[blur_name]()
        truth, observed = make(k)
        clipped = observed >= 0.98
        for method in methods:
            masked, info = deconvolve(observed, k, Options(method=method))
            plain, info_plain = deconvolve(observed, k, Options(method=method, white=1e9))
            e_m, e_p = ringing_energy(masked, truth, clipped), ringing_energy(plain, truth, clipped)
            print(json.dumps({"bench": "clipped_ringing", "scene": name, "blur": blur_name, "method": method,
                              "clipped_pixels": info["clipped_pixels"], "ringing_masked": round(e_m, 3),
                              "ringing_unmasked": round(e_p, 3), "ratio": round(e_p / e_m, 2),
                              "input_ringing": round(ringing_energy(observed, truth, clipped), 3),
                              "iterations_masked": info["iterations"], "iterations_unmasked": info_plain["iterations"],
                              "goal": "ratio >= 4"}), flush=True)


RAW_SCENES = ("camera", "astronaut", "gravel", "text", "brick", "coffee")


def raw_sweep(scenes) -> None:
    """Demosaiced noise: the scenes sampled on a Bayer mosaic and developed by LibRaw (raw_case); `auto` with λ from
    DEMOSAIC_GAIN× the model's variance (the default) against the same with the finest band's variance as is."""
    rows = []
    for name, blur_name, peak in itertools.product(scenes, BLURS, PEAKS):
        ref, observed, k = raw_case(name, blur_name, peak)
        out, info = deconvolve(observed, k, Options(iterations=150))
        saved, noisemod.DEMOSAIC_GAIN = noisemod.DEMOSAIC_GAIN, 1.0
        try:
            out_as_is, info_as_is = deconvolve(observed, k, Options(iterations=150))
        finally:
            noisemod.DEMOSAIC_GAIN = saved
        row = {"bench": "raw_case", "scene": name, "blur": blur_name, "peak": peak,
               "input_psnr": round(psnr(observed, ref), 2), "auto_psnr": round(psnr(out, ref), 2),
               "auto_lambda": round(info["regularization"], 5), "auto_iterations": info["iterations"],
               "finest_band_psnr": round(psnr(out_as_is, ref), 2),
               "finest_band_lambda": round(info_as_is["regularization"], 5)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    gain = np.array([r["auto_psnr"] - r["input_psnr"] for r in rows])
    old = np.array([r["finest_band_psnr"] - r["input_psnr"] for r in rows])
    diff = gain - old
    print(json.dumps({"bench": "raw_sweep", "cases": len(rows), "below_input": int(np.sum(gain < 0)),
                      "below_input_with_finest_band_variance": int(np.sum(old < 0)),
                      "gain_over_input_db_min": round(float(gain.min()), 2),
                      "over_finest_band_db_median": round(float(np.median(diff)), 2),
                      "over_finest_band_db_min": round(float(diff.min()), 2),
                      "worse_by_0.05_db": int(np.sum(diff < -0.05)), "goal": "never below the input"}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    ringing()
    raw_sweep(RAW_SCENES[:2] if args.quick else RAW_SCENES)
    sweep(("camera", "coins", "astronaut", "text") if args.quick else SCENES)


if __name__ == "__main__":
    main()
