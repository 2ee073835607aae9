"""`pyops batch` on Dask: a LocalCluster with 2 workers (results equal pyops.run, a killed worker, Ctrl-C and
re-run), and a scheduler and a worker started as separate processes on 127.0.0.1, as a user's cluster is."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import tifffile

import pyops
from pyops import batch
from pyops.io.images import read_image

PYOPS = [sys.executable, "-m", "pyops"]


def _images(folder: Path, n: int, size=(96, 128)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        p = folder / f"img{i:02d}.tif"
        tifffile.imwrite(p, (rng.random((*size, 3)) * 0.6 + 0.1).astype(np.float32), photometric="rgb")
        paths.append(p)
    return paths


def _results(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def client():
    saved = dict(os.environ)  # a nanny restarting a killed worker sets OMP_NUM_THREADS=1 & co. here again
    c = batch.connect(None, 2)
    yield c
    c.close()
    c.cluster.close()
    os.environ.clear()
    os.environ.update(saved)


def test_batch_results_equal_pyops_run_one_by_one(client, tmp_path):
    import urllib.request

    with urllib.request.urlopen(client.dashboard_link, timeout=30) as page:  # the link pyops batch prints
        assert page.status == 200
    inputs = _images(tmp_path / "in", 40)
    for op, params in (("bin", {"factor": 2}), ("deconvolve", {"psf": "gaussian:sigma=1.2", "iterations": 10})):
        out = tmp_path / f"out-{op}"
        summary = batch.run(op, params, inputs, client, out, "tif32")
        assert len(summary.done) == 40 and not summary.failed
        assert _results(out) == [f"img{i:02d}_pyops-{op}.tif" for i in range(40)]
        for src in inputs[::7]:
            got = read_image(out / f"{src.stem}_pyops-{op}.tif").pixels
            np.testing.assert_allclose(got, pyops.run(op, src, **params), atol=1e-5)


def test_a_local_cluster_leaves_this_process_environment_alone():
    before = dict(os.environ)  # distributed sets OMP_NUM_THREADS=1 & co. while spawning workers
    c = batch.connect(None, 1)
    try:
        assert dict(os.environ) == before
    finally:
        c.close()
        c.cluster.close()


def test_ship_sends_bytes_and_writes_the_results_here(client, tmp_path):
    inputs = _images(tmp_path / "in", 6)
    out = tmp_path / "out"
    summary = batch.run("bin", {"factor": 2}, inputs, client, out, "tif32", ship=True)
    assert len(summary.done) == 6 and not summary.failed
    assert _results(out) == [f"img{i:02d}_pyops-bin.tif" for i in range(6)]
    np.testing.assert_allclose(read_image(out / "img03_pyops-bin.tif").pixels, pyops.run("bin", inputs[3], factor=2),
                               atol=1e-5)
    again = batch.run("bin", {"factor": 2}, inputs, client, out, "tif32", ship=True)
    assert all(d["skipped"] for d in again.done) and len(_results(out)) == 6


def test_a_killed_worker_still_gives_every_result_exactly_once(client, tmp_path):
    inputs = _images(tmp_path / "in", 40, size=(256, 256))
    out = tmp_path / "out"
    killed = []

    def kill_one(kind, item):
        if kind == "result" and not killed:
            pids = client.run(os.getpid)  # worker address → pid
            killed.append(next(iter(pids.values())))
            os.kill(killed[0], signal.SIGKILL)

    summary = batch.run("deconvolve", {"psf": "gaussian:sigma=1.5", "iterations": 30}, inputs, client, out,
                        on_event=kill_one)
    assert killed and not summary.failed and len(summary.done) == 40
    assert _results(out) == [f"img{i:02d}_pyops-deconvolve.tif" for i in range(40)]  # no _01: nothing twice


def _interrupted_count(err: str) -> int:
    """The number of new results `pyops batch` says it wrote before an interrupt."""
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "run the same command again" in lines[0], err
    return int(re.search(r"interrupted: (\d+) new results written", lines[0]).group(1))


def test_ctrl_c_then_the_same_command_computes_only_the_missing(tmp_path):
    _images(tmp_path / "in", 40, size=(384, 384))
    out = tmp_path / "out"
    cmd = [*PYOPS, "batch", "deconvolve", *sorted(map(str, (tmp_path / "in").iterdir())), "-o", str(out),
           "--psf", "gaussian:sigma=1.5", "--iterations", "40", "--workers", "2", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(5):  # Ctrl-C right after the fifth result is reported
        assert json.loads(proc.stdout.readline())["event"] == "result"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    first = _results(out)
    assert _interrupted_count(err) == len(first)  # what it says is what is there
    assert 5 <= len(first) < 40
    assert "Traceback" not in err and "CancelledError" not in err, err
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert sum(e["event"] == "skipped" for e in events) == len(first)
    assert sum(e["event"] == "result" for e in events) == 40 - len(first)
    assert _results(out) == [f"img{i:02d}_pyops-deconvolve.tif" for i in range(40)]


def test_ctrl_c_while_the_cluster_starts_stops_the_batch(tmp_path):
    """A Ctrl-C while LocalCluster spawns its workers (before any task) is not lost: exit 130, one line."""
    inputs = _images(tmp_path / "in", 4)
    proc = subprocess.Popen([*PYOPS, "batch", "bin", *map(str, inputs), "-o", str(tmp_path / "out"), "--workers",
                             "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while not parent.children() and time.monotonic() < deadline:  # the first worker process is being spawned
        time.sleep(0.01)
    assert parent.children(), "no worker process was started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _interrupted_count(err) == 0 and out == ""
    assert "Traceback" not in err and "Error" not in err, err
    assert not (tmp_path / "out").exists() or _results(tmp_path / "out") == []


def test_a_bad_file_is_one_line_naming_it_once(client, tmp_path):
    inputs = _images(tmp_path / "in", 2)
    (tmp_path / "in" / "empty.tif").write_bytes(b"")
    res = subprocess.run([*PYOPS, "batch", "bin", str(inputs[0]), str(tmp_path / "in" / "empty.tif"), "-o",
                          str(tmp_path / "out"), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if "empty" in line]
    assert errors == [f"pyops: bin: {tmp_path / 'in' / 'empty.tif'}: empty file"], res.stderr
    assert "Traceback" not in res.stderr and "Key:" not in res.stderr, res.stderr
    assert _results(tmp_path / "out") == ["img00_pyops-bin.tif"]


def test_a_parameter_found_bad_while_running_exits_2(client, tmp_path):
    inputs = _images(tmp_path / "in", 2)
    res = subprocess.run([*PYOPS, "batch", "bin", *map(str, inputs), "-o", str(tmp_path / "out"), "--format", "dng",
                          "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert [line for line in res.stderr.splitlines() if "error" in line] == [
        "pyops: batch: error: format dng is only for raw-domain results (bin --domain bayer)"], res.stderr


@pytest.fixture(scope="module")
def dask_processes(tmp_path_factory):
    """A scheduler and one worker started as separate `dask` processes on 127.0.0.1; yields the address."""
    tmp = tmp_path_factory.mktemp("dask")
    dask = Path(sys.executable).with_name("dask")
    sched_file = tmp / "scheduler.json"
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                               ":0", "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([str(dask), "worker", address, "--nworkers", "1", "--nthreads", "1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def test_batch_on_a_separately_started_scheduler_and_worker(tmp_path, dask_processes):
    inputs = _images(tmp_path / "in", 8)
    res = subprocess.run([*PYOPS, "batch", "bin", *map(str, inputs), "-o", str(tmp_path / "out"),
                          "--scheduler", dask_processes, "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "1 workers" in res.stderr
    assert _results(tmp_path / "out") == [f"img{i:02d}_pyops-bin.tif" for i in range(8)]
    bad = subprocess.run([*PYOPS, "batch", "bin", str(inputs[0]), "--scheduler", "tcp://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "cannot reach the Dask scheduler" in bad.stderr


def test_the_server_hands_a_multi_file_job_to_the_cluster(tmp_path, dask_processes):
    from pyops.client import wait_for
    from tests.server_helpers import start_server

    inputs = _images(tmp_path / "in", 6)
    srv = start_server(tmp_path / "srv", tmp_path, "--scheduler", dask_processes)
    try:
        assert srv.conn.json("GET", "/v1/health")["scheduler"] == dask_processes
        job = srv.conn.json("POST", "/v1/jobs", {"operator": "bin", "inputs": [{"path": str(p)} for p in inputs],
                                                 "output": {"dir": str(tmp_path / "out")}})
        view = wait_for(srv.conn, job["id"])
    finally:
        srv.stop()
    assert view["state"] == "done" and {r["info"]["worker"].split(":")[1] for r in view["results"]} == {"//127.0.0.1"}
    assert [Path(r["output"]).name for r in view["results"]] == [f"img{i:02d}_pyops-bin.tif" for i in range(6)]
    for src in inputs[::2]:
        np.testing.assert_allclose(read_image(tmp_path / "out" / f"{src.stem}_pyops-bin.tif").pixels,
                                   np.clip(pyops.run("bin", src), 0, 1), atol=1 / 65535 + 1e-6)
