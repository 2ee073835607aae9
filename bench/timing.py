"""Shared by the benchmarks: the best (minimum) wall time of a few runs, the least disturbed by a noisy machine."""
from __future__ import annotations

import time
from typing import Callable


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
