"""Blind PSF estimation benchmark: Levin et al. 2009's cumulative error-ratio curve (fraction of cases with
error ratio ≤ r — SSD with the estimated kernel / SSD with the true kernel, the same RL-TV for both — the figure of
"Understanding and evaluating blind deconvolution algorithms", CVPR 2009) for pyops' psf_estimate:

- Levin's 32 blurred images as given, and with Poisson peak 800 e⁻ + read 2 e⁻ and peak 200 e⁻ + read 3 e⁻ added;
- the varied set of tests/test_blind.py (scikit-image and procedural photos, random-walk camera-shake kernels of
  9–31 px) at low (peak 10000 e⁻), medium (800 + 2) and high (200 + 3) noise.

One JSON line per set: counts with ratio < 2 and < 3 of N, the curve, the median and worst PSNR gain of blind
estimate → deconvolve (defaults) over the blurred input, how many estimates warned that the kernel spans the whole
search (flagged; of them with ratio ≥ 3; the cases below the blurred input that were not flagged), seconds per
estimate (the whole pyops.run call); then the time of one estimate on a 512×512 region. A full run writes docs/blind-error-ratios.json and .png.

    .venv/bin/python bench/blind.py            # everything (about 15 min on 2 cores)
    .venv/bin/python bench/blind.py --quick    # 8 Levin cases (one per kernel) and 8 varied cases per set, nothing written
    .venv/bin/python bench/blind.py --sets levin_800,varied_medium"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyops
from tests.test_blind import blur, levin_case, photo, score, shake_kernel, varied_case

RATIOS = np.round(np.arange(1.0, 5.01, 0.25), 2)
LEVIN_ALL = [(i, j) for i in range(1, 5) for j in range(1, 9)]
LEVIN_QUICK = [(1, 1), (2, 2), (3, 3), (4, 4), (1, 5), (2, 6), (3, 7), (4, 8)]
VARIED_N, VARIED_QUICK = 24, 8
SETS = {"levin": ("levin", "none"), "levin_800": ("levin", "medium"), "levin_200": ("levin", "high"),
        "varied_low": ("varied", "low"), "varied_medium": ("varied", "medium"), "varied_high": ("varied", "high")}


def run_set(name: str, quick: bool) -> dict:
    kind, level = SETS[name]
    cases = ([levin_case(i, j, level) for i, j in (LEVIN_QUICK if quick else LEVIN_ALL)] if kind == "levin"
             else [varied_case(n, level) for n in range(VARIED_QUICK if quick else VARIED_N)])
    rows = []
    for case, sharp, blurred, k in cases:
        rows.append({"case": case, **score(sharp, blurred, k)})
    r = np.array([row["ratio"] for row in rows])
    g = np.array([row["gain_db"] for row in rows])
    t = np.array([row["seconds"] for row in rows])
    return {"set": name, "noise": level, "n": len(rows), "ratio_lt2": int((r < 2).sum()), "ratio_lt3": int((r < 3).sum()),
            "median_ratio": round(float(np.median(r)), 2),
            "curve": {f"{x:g}": round(float((r <= x).mean()), 3) for x in RATIOS},
            "median_gain_db": round(float(np.median(g)), 2), "min_gain_db": round(float(g.min()), 2),
            "below_blurred": int((g < 0).sum()),
            "flagged": int(sum(row["flagged"] for row in rows)),
            "flagged_ratio_ge3": int(sum(row["flagged"] and row["ratio"] >= 3 for row in rows)),
            "unflagged_below_blurred": int(sum(not row["flagged"] and row["gain_db"] < 0 for row in rows)),
            "seconds_median": round(float(np.median(t)), 2),
            "seconds_max": round(float(t.max()), 2),
            "cases": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]}


def time_512() -> dict:
    sharp = np.tile(photo("camera"), (2, 2))[:512, :512]
    blurred = blur(sharp, shake_kernel(21, 5)).astype(np.float32)
    t = time.perf_counter()
    pyops.run("psf_estimate", blurred)
    return {"bench": "blind_512", "seconds": round(time.perf_counter() - t, 2), "goal": "<= 5"}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for res in results:
        x = [float(v) for v in res["curve"]]
        ax.plot(x, list(res["curve"].values()), marker="o", ms=3,
                label=f"{res['set']} ({res['ratio_lt2']}/{res['n']} < 2)")
    ax.set_xlabel("error ratio r (SSD estimated kernel / SSD true kernel)")
    ax.set_ylabel("fraction of cases with ratio ≤ r")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(1, 5)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("pyops psf_estimate: cumulative error ratios (Levin et al. 2009)")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 cases per set, nothing written")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--write", action="store_true", help="write docs/blind-error-ratios.* even for --quick or "
                    "some sets (the JSON says which cases ran)")
    args = ap.parse_args()
    names = args.sets.split(",")
    results = []
    for name in names:
        res = run_set(name, args.quick)
        results.append(res)
        print(json.dumps({k: v for k, v in res.items() if k != "cases"}), flush=True)
        print(json.dumps({"set": name, "ratios": [c["ratio"] for c in res["cases"]],
                          "gains_db": [c["gain_db"] for c in res["cases"]]}), flush=True)
    timing = time_512()
    print(json.dumps(timing), flush=True)
    if args.write or (not args.quick and names == list(SETS)):
        (ROOT / "docs" / "blind-error-ratios.json").write_text(json.dumps(
            {"quick": args.quick, "sets": results, "timing": timing}, indent=1) + "\n")
        plot(results, ROOT / "docs" / "blind-error-ratios.png")


if __name__ == "__main__":
    main()
