"""Benchmark: Bayer 2×2 same-colour binning of a 6000×4000 uint16 mosaic, against the floor of a numba
parallel copy of the same array measured in the same run. Prints one JSON line.

    .venv/bin/python bench/bin_bayer.py [--repeat N]
ratio = copy time / binning time (1.0 = as fast as copying the array; goal >= 0.5)."""
from __future__ import annotations

import argparse
import json

import numba as nb
import numpy as np
from timing import best

from pyops.mosaic import RawMosaic
from pyops.ops.binning import bin_bayer


@nb.njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for i in nb.prange(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 16000, size=(4000, 6000), dtype=np.uint16)
    mosaic = RawMosaic(data=data, cfa=np.array([[0, 1], [1, 2]], np.uint8),
                       black=np.full((2, 2), 512, np.float32), white=16383.0)
    dst = np.empty_like(data)
    _parallel_copy(data, dst)  # compile / load from cache
    bin_bayer(mosaic, 2, "sum")
    t_copy = best(lambda: _parallel_copy(data, dst), args.repeat)
    t_bin = best(lambda: bin_bayer(mosaic, 2, "sum"), args.repeat)
    # worst case: 0.1 % of the sites clipped, spread so that every row needs the per-site clip test
    hot = data.copy()
    hot.ravel()[rng.choice(hot.size, hot.size // 1000, replace=False)] = 16383
    hot_mosaic = mosaic.with_data(hot)
    t_hot = best(lambda: bin_bayer(hot_mosaic, 2, "sum"), args.repeat)
    gb = data.nbytes / 1e9
    print(json.dumps({
        "bench": "bin_bayer_2x2_6000x4000_uint16",
        "threads": nb.get_num_threads(),
        "bin_read_gbps": round(gb / t_bin, 2),
        "copy_read_gbps": round(gb / t_copy, 2),
        "ratio_bin_over_copy_throughput": round(t_copy / t_bin, 3),
        "ratio_with_clipped_sites_everywhere": round(t_copy / t_hot, 3),
        "goal": ">= 0.5",
    }))


if __name__ == "__main__":
    main()
