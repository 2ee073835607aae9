"""One image's tiles on Dask workers (issue 12, item 4): `process_file(..., client=)` and `pyops run --scheduler`
hand the tiles after the probe to the cluster, each worker reading its own tiles from the shared file; the result
is the one a single process gives, written by the client a band at a time and published whole, even when a worker
is killed mid-image."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from pyops.ops.deconv import fft as fftmod
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv import tiles
from pyops.process import process_file
# fixtures: a 2-worker LocalCluster, and a scheduler and a worker started as processes
from tests.test_batch import client, dask_processes  # noqa: F401
from tests.test_stream import _tiffs


def _max_diff(a, b) -> int:
    return int(np.abs(tifffile.imread(a).astype(np.int32) - tifffile.imread(b)).max())


@pytest.mark.parametrize("kill", [False, True])
def test_tiles_on_a_local_cluster_give_one_process_result(client, tmp_path, monkeypatch, kill):  # noqa: F811
    """12 tiles of an RGB photo on a 2-worker LocalCluster: the same 16-bit pixels as in this process (within
    1 LSB), also when a worker is killed after the first tile came back — its tiles run again elsewhere and one
    complete result is published, nothing else left in the folder. The local cluster's workers run their FFTs on
    one thread each, and so does this process here: ducc0 rounds differently with another thread count, and RL
    amplifies that where a dark pixel next to an edge nears zero (0.04 on 38 of the 614 400 values)."""
    monkeypatch.setattr(tiles, "TILE", 256)  # 3×4 tiles on the 640×960 photo
    monkeypatch.setattr(fftmod, "THREADS", 1)
    flat, _, _, k = _tiffs(tmp_path, grey=False)
    params = {"psf": k, "iterations": 12}
    here = process_file("deconvolve", params, flat, tmp_path / "here")
    killed = []

    def progress(fraction: float, message: str) -> None:
        if kill and message.startswith("tile ") and not killed:
            pids = client.run(os.getpid)
            killed.append(next(iter(pids.values())))
            os.kill(killed[0], signal.SIGKILL)

    there = process_file("deconvolve", params, flat, tmp_path / "there", progress=progress, client=client)
    assert there.info["tiles"] == 12 and there.info["tiles_on"].startswith("dask tcp://127.0.0.1")
    assert "tiles_on" not in here.info and there.info["iterations"] == here.info["iterations"]
    assert _max_diff(here.output, there.output) <= 1
    assert bool(killed) == kill
    assert [p.name for p in (tmp_path / "there").iterdir()] == [there.output.name]


def test_run_scheduler_sends_the_tiles_to_separately_started_processes(tmp_path, dask_processes):  # noqa: F811
    """`pyops run deconvolve --scheduler ADDRESS` on a 2600×1600 grey TIFF (3×2 tiles of the default size), the
    scheduler and its worker started as `dask` processes: the pixels of a run in one process, from an uncompressed
    TIFF and from one in deflate strips; a PNG runs here with a note saying why; an unreachable scheduler is one
    line and exit 2."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1600, :2600]
    scene = 0.4 + 0.3 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 0.2 * (((xx // 90) + (yy // 70)) % 2)
    from scipy.signal import fftconvolve

    blurred = fftconvolve(scene, psfmod.motion(9, 30), mode="same")
    data = np.round(np.clip(rng.poisson(np.clip(blurred, 0, None) * 3000) / 3000, 0, 1) * 65535).astype(np.uint16)
    flat, packed, png = tmp_path / "flat.tif", tmp_path / "packed.tif", tmp_path / "flat.png"
    tifffile.imwrite(flat, data, photometric="minisblack")
    tifffile.imwrite(packed, data, photometric="minisblack", compression="zlib", predictor=True, rowsperstrip=64)
    iio.imwrite(png, data)
    pyops = [sys.executable, "-m", "pyops", "run", "deconvolve", "--psf", "motion:length=9,angle=30",
             "--iterations", "8", "--json"]

    def run(*args: str) -> dict:
        res = subprocess.run([*pyops, *args], capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.splitlines()[-1])

    here = run(str(flat), "-o", str(tmp_path / "here"))
    there = run(str(flat), "-o", str(tmp_path / "there"), "--scheduler", dask_processes)
    assert there["info"]["tiles"] == here["info"]["tiles"] == 6
    assert there["info"]["tiles_on"] == f"dask {dask_processes}"
    assert _max_diff(here["output"], there["output"]) <= 1
    compressed = run(str(packed), "-o", str(tmp_path / "compressed"), "--scheduler", dask_processes)
    assert compressed["info"]["tiles_on"] == f"dask {dask_processes}"
    assert _max_diff(here["output"], compressed["output"]) <= 1
    local = run(str(png), "-o", str(tmp_path / "local"), "--scheduler", dask_processes)
    assert "tiles_on" not in local["info"] and any("not on the cluster" in n for n in local["info"]["notes"])
    assert _max_diff(here["output"], local["output"]) <= 1
    bad = subprocess.run([*pyops, str(flat), "--scheduler", "tcp://127.0.0.1:9"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "cannot reach the Dask scheduler" in bad.stderr and "Traceback" not in bad.stderr
