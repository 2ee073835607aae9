"""Memory admission (issue 10 #6): each operator's declared memory need, checked against the peak resident
memory of real runs, and the refusals of the server (413) and of `pyops run` (exit 2) before anything is
decoded.

Calibration: one child process per case runs the job once on a tiny file (compiled kernels, FFT plans), reads
its RSS and resets its peak, runs the job on a 4–12 MP file through process_file (read, run, write: the whole
job) and reports the rise of the peak RSS above that RSS."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pyops.client import ServerError
from tests.server_helpers import start_server

# (operator, parameters, input kind, megapixels)
CASES = [
    ("bin", {}, "rgb", 4),
    ("bin", {"factor": 1.5}, "rgb", 4),
    ("bin", {"domain": "bayer"}, "raw", 12),
    ("bin", {}, "raw", 4),
    ("boost", {"method": "equalize"}, "rgb", 4),
    ("twostop", {}, "raw", 12),
    ("twostop", {"factor": 1}, "raw", 4),
    ("psf_estimate", {"region": "0,0,64,64", "size": 15}, "rgb", 4),
    ("deconvolve", {"iterations": 3, "stop": "none"}, "rgb", 4),
    ("deconvolve", {"iterations": 3, "stop": "none", "luminance_only": True}, "rgb", 4),
]
UNSAFE, ABSURD = 1.0, 2.5  # the estimate must be at least the measured peak, and at most 2.5 times it


def _write_inputs(folder: Path, megapixels: float) -> dict[str, Path]:
    """A noisy RGB TIFF and a synthetic Bayer DNG of about `megapixels`, 3:2."""
    from pyops.demo import capture, scene
    from pyops.io.dng import write_dng

    rng = np.random.default_rng(0)
    h = int((megapixels * 1e6 / 1.5) ** 0.5) // 2 * 2
    w = int(h * 1.5) // 2 * 2
    tif, dng = folder / f"rgb{megapixels:g}.tif", folder / f"raw{megapixels:g}.dng"
    tifffile.imwrite(tif, (rng.random((h, w, 3)) * 30000 + 5000).astype(np.uint16), photometric="rgb")
    write_dng(dng, capture(scene(h, w), rng))
    return {"rgb": tif, "raw": dng}


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _peak_rss() -> int:
    """VmHWM, this process's own peak RSS. Not ru_maxrss: that also keeps the peak of the process it was forked
    from before exec (the test's, holding the 12 MP inputs), and clear_refs does not reset it."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def _measure(op: str, params: dict, src: Path, tiny: Path, out_dir: Path) -> int:
    """In a fresh child: run the job once on the tiny file (compiled kernels, FFT plans), reset the peak, then
    run it on `src`; returns the rise of the peak RSS above the RSS before that run."""
    from pyops.process import process_file

    process_file(op, params, tiny, out_dir)
    with open("/proc/self/clear_refs", "w") as fh:  # peak RSS := current RSS (imports and numba builds peak higher)
        fh.write("5")
    base = _rss()
    process_file(op, params, src, out_dir)
    return _peak_rss() - base


def _run_case(case: tuple, files: dict, out: Path) -> dict:
    from pyops.memory import estimate
    from pyops.registry import get

    op, params, kind, mp = case
    src, tiny = files[mp][kind], files[0.01][kind]
    res = subprocess.run([sys.executable, "-m", "tests.test_memory", op, json.dumps(params), str(src), str(tiny),
                          str(out)], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    o = get(op)
    return {"op": op, "params": params, "kind": kind, "mp": mp, "measured": int(res.stdout.split()[-1]),
            "estimate": estimate(o, o.parse(params), src)}


def test_each_operators_estimate_is_safe_and_not_absurd_on_real_runs(tmp_path):
    files = {mp: _write_inputs(tmp_path, mp) for mp in sorted({c[3] for c in CASES} | {0.01})}
    out = tmp_path / "out"
    out.mkdir()
    with ThreadPoolExecutor(2) as pool:  # one process per case: a fork of a warm process is not safe (OpenMP)
        rows = list(pool.map(lambda case: _run_case(case, files, out), CASES))
    report = "\n".join(f"{r['op']:<12} {json.dumps(r['params']):<58} {r['kind']} {r['mp']:>2} MP: measured "
                       f"{r['measured'] / 1e6:7.0f} MB, estimate {r['estimate'] / 1e6:7.0f} MB "
                       f"(×{r['estimate'] / r['measured']:.2f})" for r in rows)
    print(report)
    for r in rows:
        assert r["measured"] > 20e6, report  # the job itself was measured, not noise
        assert UNSAFE * r["measured"] <= r["estimate"] <= ABSURD * r["measured"], report


def test_the_server_refuses_a_job_over_its_memory_limit_with_the_numbers_and_writes_nothing(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    src = _write_inputs(root, 4)["rgb"]
    before = sorted(p.name for p in root.iterdir())
    srv = start_server(tmp_path / "srv", root, "--max-memory-gb", "0.2")
    try:
        with pytest.raises(ServerError) as err:
            srv.conn.json("POST", "/v1/jobs", {"operator": "deconvolve", "inputs": [{"path": str(src)}]})
        assert err.value.status == 413
        detail = err.value.detail
        assert detail.startswith("deconvolve on rgb4.tif needs about "), detail
        need = float(detail.split("needs about ")[1].split(" GB")[0])
        assert need >= 0.3 and "this server allows 0.2 GB (pyops serve --max-memory-gb)" in detail, detail
        assert srv.conn.json("GET", "/v1/jobs") == []
        # a job that fits is admitted by the same server
        small = root / "small.tif"
        tifffile.imwrite(small, np.full((64, 96, 3), 20000, np.uint16), photometric="rgb")
        assert srv.conn.json("POST", "/v1/jobs", {"operator": "bin", "inputs": [{"path": str(small)}]})["id"]
    finally:
        srv.stop()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("small")) == before  # nothing written


@pytest.mark.parametrize("how", ["flag", "env"])
def test_pyops_run_refuses_before_decoding_with_one_line_and_exit_2(tmp_path, how):
    src = _write_inputs(tmp_path, 4)["rgb"]
    env = dict(os.environ)
    args = [sys.executable, "-m", "pyops", "run", "deconvolve", str(src)]
    if how == "flag":
        args += ["--max-memory-gb", "0.2"]
    else:
        env["PYOPS_MAX_MEMORY_GB"] = "0.2"
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyops: deconvolve on rgb4.tif needs about "), res.stderr
    assert "pyops run allows 0.2 GB (--max-memory-gb or PYOPS_MAX_MEMORY_GB)" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw4.dng", "rgb4.tif"]  # no result, no temp file
    # the override lets it through (a small operator, to keep the test short)
    res = subprocess.run([sys.executable, "-m", "pyops", "run", "bin", str(src), "--max-memory-gb", "8"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr


def test_the_default_limit_is_a_share_of_the_ram_per_worker():
    from pyops import memory

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory.default_limit(1) == int(ram * 0.7)
    assert memory.default_limit(4) == int(ram * 0.7 / 4)


if __name__ == "__main__":  # the measuring child of the calibration test
    print(_measure(sys.argv[1], json.loads(sys.argv[2]), *map(Path, sys.argv[3:6])))
