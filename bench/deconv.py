"""Deconvolution benchmarks, one JSON line each, ratios measured in one run:
- rl_iter_over_fft_floor: one RL-TV iteration on a 6048×4032 float32 channel ÷ 2 forward + 2 inverse real FFTs
  of the same padded size with the same (fastest) FFT library (goal ≤ 1.25);
- speedup_vs_skimage: scikit-image restoration.richardson_lucy time per iteration ÷ ours (plain RL, same data).

    .venv/bin/python bench/deconv.py"""
from __future__ import annotations

import json

import numpy as np
from timing import best

from pyops.ops.deconv import fft as fftmod
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv.rl import Options, deconvolve


def main() -> None:
    rng = np.random.default_rng(0)
    k = psfmod.gaussian(1.6)
    img = (rng.random((4032, 6048)) * 0.5 + 0.1).astype(np.float32)
    deconvolve(img[:64, :64], k, Options(iterations=2, stop="none"))  # compile
    t1 = best(lambda: deconvolve(img, k, Options(iterations=1, stop="none")), 2)
    t4 = best(lambda: deconvolve(img, k, Options(iterations=4, stop="none")), 2)
    per_iter = (t4 - t1) / 3
    _, info = deconvolve(img[:64, :64], k, Options(iterations=1, stop="none"))
    shape = (fftmod.good_size(4032 + 2 * 13), fftmod.good_size(6048 + 2 * 13))
    plan = fftmod.plan(shape)
    x = rng.random(shape).astype(np.float32)

    def four_ffts():
        a = plan.rfft(x)
        plan.irfft(a)
        b = plan.rfft(x)
        plan.irfft(b)

    four_ffts()
    floor = best(four_ffts)
    print(json.dumps({"bench": "rl_iter_over_fft_floor", "image": "6048x4032 float32, one channel, RL-TV",
                      "fft": plan.name, "padded": list(shape), "iteration_s": round(per_iter, 3),
                      "four_fft_s": round(floor, 3), "ratio": round(per_iter / floor, 2), "goal": "<= 1.25"}))

    from skimage.restoration import richardson_lucy

    small = img[:1024, :1536].astype(np.float64)
    n = 10
    t_sk = best(lambda: richardson_lucy(small, k.astype(np.float64), num_iter=n, clip=False), 2) / n
    t_a = best(lambda: deconvolve(small, k, Options(method="rl", iterations=2, stop="none", accelerate=False)), 2)
    t_b = best(lambda: deconvolve(small, k, Options(method="rl", iterations=2 + n, stop="none", accelerate=False)), 2)
    ours = (t_b - t_a) / n
    print(json.dumps({"bench": "speedup_vs_skimage", "image": "1536x1024 one channel, plain RL",
                      "skimage_iter_s": round(t_sk, 4), "pyops_iter_s": round(ours, 4),
                      "speedup": round(t_sk / ours, 2), "goal": ">= 5"}))


if __name__ == "__main__":
    main()
