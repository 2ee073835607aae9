"""Batch throughput on Dask: images per minute with 1 and with 2 LocalCluster workers, same files, same run
(40 synthetic 1024×768 RGB TIFFs through deconvolve, 20 RL-TV iterations). One JSON line.

    .venv/bin/python bench/batch.py"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from pyops import batch


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        inputs = []
        for i in range(40):
            p = Path(tmp) / f"img{i:02d}.tif"
            tifffile.imwrite(p, (rng.random((768, 1024, 3)) * 0.6 + 0.1).astype(np.float32), photometric="rgb")
            inputs.append(p)
        rates = {}
        for workers in (1, 2):
            client = batch.connect(None, workers)
            try:
                batch.run("bin", {}, inputs[:2], client, Path(tmp) / f"warm{workers}")  # imports and JIT
                t = time.perf_counter()
                summary = batch.run("deconvolve", {"psf": "gaussian:sigma=1.5", "iterations": 20, "stop": "none"},
                                    inputs, client, Path(tmp) / f"out{workers}")
                rates[workers] = len(summary.done) / (time.perf_counter() - t) * 60
            finally:
                client.close()
                client.cluster.close()
    print(json.dumps({"bench": "batch_throughput", "images": "40 × 1024x768 RGB, deconvolve 20 it.",
                      "images_per_min_1_worker": round(rates[1], 1), "images_per_min_2_workers": round(rates[2], 1),
                      "scaling": round(rates[2] / rates[1], 2)}))


if __name__ == "__main__":
    main()
