"""Benchmarks of the operator server, one JSON line each:
- overhead of a warm job in path mode beyond the operator's own work (same file, same process I/O), goal <= 50 ms:
  median time from POST /v1/jobs to the job's final server-sent event, minus the median of process_file()
  for the same job in this process;
- cold start of `pyops client run` to its first result with no server running (numba cache and disk warm),
  goal <= 3 s, and the same command against a running server.

    .venv/bin/python bench/server.py [--repeat N]"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.server_helpers import server_env, start_server  # noqa: E402

from pyops.process import process_file  # noqa: E402


def _client_to_first_result(env: dict, src: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pyops", "client", "run", "bin", str(src)], env=env,
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("result"):
            elapsed = time.perf_counter() - t
            break
    else:
        raise RuntimeError("no result")
    proc.wait()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        src = root / "small.tif"
        tifffile.imwrite(src, (np.random.default_rng(0).random((512, 768, 3)) * 60000).astype(np.uint16),
                         photometric="rgb")
        process_file("bin", {}, src, root / "warm")
        local = []
        for i in range(args.repeat):
            t = time.perf_counter()
            process_file("bin", {}, src, root / "local")
            local.append(time.perf_counter() - t)

        srv = start_server(base / "srv", root)
        try:
            conn = srv.conn
            remote = []
            for i in range(args.repeat + 2):
                t = time.perf_counter()
                job = conn.json("POST", "/v1/jobs", {"operator": "bin", "inputs": [{"path": str(src)}],
                                                     "output": {"dir": str(root / "remote")}})
                for view in conn.events(job["id"]):
                    pass
                assert view["state"] == "done", view
                if i >= 2:  # the first jobs warm the server's own caches
                    remote.append(time.perf_counter() - t)
            warm_client = statistics.median(_client_to_first_result(srv.env, src) for _ in range(3))
        finally:
            srv.stop()
        overhead_ms = (statistics.median(remote) - statistics.median(local)) * 1000
        print(json.dumps({"bench": "server_overhead_warm_path_job", "op": "bin 2x2 of a 768x512 16-bit TIFF",
                          "job_ms": round(statistics.median(remote) * 1000, 1),
                          "in_process_ms": round(statistics.median(local) * 1000, 1),
                          "overhead_ms": round(overhead_ms, 1), "ratio_to_goal_50ms": round(overhead_ms / 50, 3)}))

        env = server_env(base / "cold")
        env["PYOPS_ALLOW_ROOTS"] = str(root)
        cold = []
        for _ in range(3):
            cold.append(_client_to_first_result(env, src))
            subprocess.run([sys.executable, "-m", "pyops", "client", "stop"], env=env, capture_output=True)
        print(json.dumps({"bench": "client_cold_start_to_first_result", "cold_s": round(statistics.median(cold), 3),
                          "ratio_to_goal_3s": round(statistics.median(cold) / 3, 3),
                          "with_server_running_s": round(warm_client, 3)}))


if __name__ == "__main__":
    main()
