"""The operator server, a real uvicorn on 127.0.0.1: every operator in path and upload mode, security,
bad inputs, cancel, kill -9, and a load of concurrent clients."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

import pyops
from pyops import provenance
from pyops.client import Connection, ServerError, wait_for
from pyops.io.dng import write_dng
from pyops.io.images import read_image
from pyops.mosaic import RawMosaic
from pyops.registry import operators
from tests.conftest import CANON_CHECKER, need
from tests.server_helpers import start_server


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("root")
    shutil.copy(need(CANON_CHECKER), d / "IMG_0101.CRW")
    rng = np.random.default_rng(0)
    tifffile.imwrite(d / "photo.tif", (rng.random((96, 128, 3)) * 40000).astype(np.uint16), photometric="rgb")
    return d


def _input_for(op, root):
    return root / ("IMG_0101.CRW" if op.wants_raw(op.params()) else "photo.tif")


def _upload(conn: Connection, path) -> str:
    status, body = conn.request("POST", "/v1/uploads?" + urllib.parse.urlencode({"filename": path.name}),
                                path.read_bytes(), {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return json.loads(body)["upload_id"]


@pytest.mark.parametrize("mode", ["path", "upload"])
@pytest.mark.parametrize("op", operators(), ids=lambda o: o.name)
def test_every_operator_through_the_server_equals_pyops_run(server, root, tmp_path, op, mode):
    src = _input_for(op, root)
    conn = server.conn
    if mode == "path":
        out_dir = root / f"out-{op.name}"
        job = conn.json("POST", "/v1/jobs", {"operator": op.name, "inputs": [{"path": str(src)}],
                                             "output": {"dir": str(out_dir)}})
    else:
        job = conn.json("POST", "/v1/jobs", {"operator": op.name, "inputs": [{"upload": _upload(conn, src)}]})
    view = wait_for(conn, job["id"])
    assert view["state"] == "done", view
    (res,) = view["results"]
    if mode == "path":
        out = root / res["output"]
    else:
        status, data = conn.request("GET", res["download"])
        assert status == 200
        out = tmp_path / res["output"]
        out.write_bytes(data)
    rec = provenance.read(out)
    assert rec["operator"] == op.name and rec["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    if op.output == "psf":  # the file is the kernel's picture; the kernel is in the server's PSF library
        saved = Path(server.env["XDG_DATA_HOME"]) / "pyops" / "psf" / f"{res['info']['saved_as']}.npy"
        assert out.read_bytes()[:4] == b"\x89PNG"
        np.testing.assert_allclose(np.load(saved), pyops.run(op.name, src), atol=1e-6)
        return
    expected = np.clip(pyops.run(op.name, src), 0, 1)
    got = read_image(out).pixels
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1 / 65535 + 1e-6


def test_bayer_binning_through_the_server_writes_the_dng(server, root):
    job = server.conn.json("POST", "/v1/jobs", {"operator": "bin", "params": {"domain": "bayer"},
                                                "inputs": [{"path": str(root / "IMG_0101.CRW")}],
                                                "output": {"dir": str(root / "out-bayer")}})
    view = wait_for(server.conn, job["id"])
    out = view["results"][0]["output"]
    assert out.endswith("IMG_0101_pyops-bin.dng")
    with rawpy.imread(out) as raw:
        assert raw.raw_image_visible.shape == (860, 1156)


def test_operators_endpoint_is_the_registry(server):
    listed = server.conn.json("GET", "/v1/operators")
    assert [o["name"] for o in listed] == [o.name for o in operators()]
    for entry, op in zip(listed, operators()):
        assert entry["schema"] == op.params.model_json_schema()
        assert [p["name"] for p in entry["params"]] == list(op.params.model_fields)


def test_token_is_required(server):
    conn = server.conn
    bare = Connection(dict(server.info, token="wrong"))
    assert bare.request("GET", "/v1/health")[0] == 401
    status, _ = conn.request("GET", "/v1/health", headers={"Authorization": ""})
    assert status == 401
    assert conn.request("GET", "/docs")[0] == 200
    assert conn.request("GET", "/openapi.json", headers={"Authorization": ""})[0] == 401


def test_state_file_is_private(server):
    path = server.env["XDG_RUNTIME_DIR"] + "/pyops/server.json"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    assert server.info["host"] == "127.0.0.1"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "192.168.1.5", "localhost.evil.example"])
def test_dns_rebinding_is_refused(server, host):
    status, body = server.conn.request("GET", "/v1/health", headers={"Host": host})
    assert status == 403 and b"loopback" in body


def test_loopback_host_names_pass(server):
    for host in ("localhost", f"127.0.0.1:{server.info['port']}", f"[::1]:{server.info['port']}"):
        assert server.conn.request("GET", "/v1/health", headers={"Host": host})[0] == 200


def test_paths_outside_the_roots_are_refused(server, root, tmp_path):
    outside = tmp_path / "secret.tif"
    shutil.copy(root / "photo.tif", outside)
    link = root / "link-out.tif"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    sneaky = f"{root}/../{tmp_path.name}/secret.tif"
    for path in (str(outside), str(link), sneaky):
        with pytest.raises(ServerError) as err:
            server.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": path}]})
        assert err.value.status == 403 and "outside the allowed roots" in err.value.detail
    with pytest.raises(ServerError) as err:
        server.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(root / "photo.tif")}],
                                              "output": {"dir": str(tmp_path)}})
    assert err.value.status == 403
    assert not list(tmp_path.glob("*pyops*"))


def test_a_psf_file_outside_the_roots_is_refused(server, root, tmp_path):
    np.save(tmp_path / "k.npy", np.ones((3, 3)))
    with pytest.raises(ServerError) as err:
        server.conn.json("POST", "/v1/jobs", {"operator": "deconvolve", "params": {"psf": str(tmp_path / "k.npy")},
                                              "inputs": [{"path": str(root / "photo.tif")}]})
    assert err.value.status == 403 and "psf file" in err.value.detail


@pytest.mark.parametrize("params,needle", [
    ({"factor": 0}, "greater than or equal to 1"),
    ({"mode": "median"}, "'sum' or 'mean'"),
    ({"colour": 1}, "Extra inputs are not permitted"),
    ({"domain": "bayer", "factor": 1.5}, "integer factor"),
])
def test_bad_parameters_are_422_with_a_reason(server, root, params, needle):
    with pytest.raises(ServerError) as err:
        server.conn.json("POST", "/v1/jobs", {"operator": "bin", "params": params,
                                              "inputs": [{"path": str(root / "photo.tif")}]})
    assert err.value.status == 422 and needle in err.value.detail


def test_unknown_operator_and_job_are_clear(server, root):
    with pytest.raises(ServerError) as err:
        server.conn.json("POST", "/v1/jobs", {"operator": "sharpen", "inputs": [{"path": str(root / "photo.tif")}]})
    assert err.value.status == 422 and "sharpen" in err.value.detail
    with pytest.raises(ServerError) as err:
        server.conn.json("GET", "/v1/jobs/nope")
    assert err.value.status == 404


@pytest.mark.parametrize("name,content", [
    ("text.NEF", b"just some text\n"),
    ("broken.tif", b"II*\x00" + b"\x00" * 20),
    ("cut.CRW", None),
])
def test_corrupt_inputs_fail_the_job_with_a_reason_and_the_server_goes_on(server, root, name, content):
    bad = root / name
    bad.write_bytes(content if content is not None else (root / "IMG_0101.CRW").read_bytes()[:200_000])
    job = server.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(bad)}]})
    view = wait_for(server.conn, job["id"])
    assert view["state"] == "failed" and name in view["error"]
    assert not list(root.glob(f"{bad.stem}_pyops*"))
    ok = server.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(root / "photo.tif")}],
                                               "output": {"dir": str(root / "after-bad")}})
    assert wait_for(server.conn, ok["id"])["state"] == "done"


def test_empty_upload_is_refused(server):
    status, body = server.conn.request("POST", "/v1/uploads?filename=empty.tif", b"")
    assert status == 422 and b"empty" in body


def test_too_large_images_are_refused_with_413(tmp_path, root):
    srv = start_server(tmp_path, root, "--max-megapixels", "1")
    try:
        with pytest.raises(ServerError) as err:
            srv.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(root / "IMG_0101.CRW")}]})
        assert err.value.status == 413 and "above this server's limit of 1 MP" in err.value.detail
    finally:
        srv.stop()


def _big_raw(folder):
    """A 24 MP raw (a DNG made here) so a job runs long enough to be cancelled or killed midway."""
    rng = np.random.default_rng(1)
    data = rng.integers(200, 3000, size=(4000, 6000), dtype=np.uint16)
    path = folder / "BIG_0001.dng"
    if not path.exists():
        write_dng(path, RawMosaic(data=data, cfa=np.array([[0, 1], [1, 2]], np.uint8),
                                  black=np.full((2, 2), 128, np.float32), white=4095.0, xyz_to_camera=np.eye(3),
                                  make="pyops", model="test"))
    return path


def _wait_running(conn, job_id, word):
    deadline = time.time() + 60
    while time.time() < deadline:
        view = conn.json("GET", f"/v1/jobs/{job_id}")
        if view["state"] == "running" and word in view["message"]:
            return view
        assert view["state"] in ("queued", "running"), view
        time.sleep(0.01)
    raise AssertionError("job never reached " + word)


def test_cancel_mid_job_leaves_no_file(server, root):
    big = _big_raw(root)
    out_dir = root / "out-cancel"
    job = server.conn.json("POST", "/v1/jobs", {"operator": "twostop", "inputs": [{"path": str(big)}],
                                                "output": {"dir": str(out_dir)}})
    _wait_running(server.conn, job["id"], "developing")
    server.conn.json("DELETE", f"/v1/jobs/{job['id']}")
    view = wait_for(server.conn, job["id"])
    assert view["state"] == "cancelled"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_a_client_that_goes_away_cancels_its_job_when_it_asked_to(server, root):
    """What the GIMP plug-in relies on: GIMP kills a plug-in whose progress the user cancels."""
    import http.client

    big = _big_raw(root)
    out_dir = root / "out-disconnect"
    job = server.conn.json("POST", "/v1/jobs", {"operator": "twostop", "inputs": [{"path": str(big)}],
                                                "output": {"dir": str(out_dir)}})
    info = server.conn.info
    stream = http.client.HTTPConnection(info["host"], info["port"], timeout=30)
    stream.request("GET", f"/v1/jobs/{job['id']}/events?cancel_on_disconnect=true",
                   headers={"Authorization": f"Bearer {info['token']}"})
    resp = stream.getresponse()
    assert resp.status == 200 and resp.readline().startswith(b"data: ")
    _wait_running(server.conn, job["id"], "developing")
    stream.sock.shutdown(2)  # the client dies
    stream.close()
    view = wait_for(server.conn, job["id"])
    assert view["state"] == "cancelled"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_kill_9_mid_job_loses_nothing_and_a_restart_works(tmp_path, root):
    big = _big_raw(root)
    sidecar = root / "BIG_0001.dng.xmp"
    sidecar.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (big, sidecar)}
    out_dir = root / "out-kill"
    srv = start_server(tmp_path, root)
    job = srv.conn.json("POST", "/v1/jobs", {"operator": "twostop", "inputs": [{"path": str(big)}],
                                             "output": {"dir": str(out_dir)}})
    _wait_running(srv.conn, job["id"], "developing")
    srv.stop(signal.SIGKILL)
    finals = [p for p in out_dir.glob("*") if not p.name.startswith(".")] if out_dir.exists() else []
    assert finals == []
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (big, sidecar)} == before
    again = start_server(tmp_path, root)
    try:
        job = again.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(root / "photo.tif")}],
                                                   "output": {"dir": str(out_dir)}})
        view = wait_for(again.conn, job["id"])
        assert view["state"] == "done" and os.path.exists(view["results"][0]["output"])
    finally:
        again.stop()


def test_jobs_run_one_at_a_time_in_order(server, root):
    ids = [server.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(root / "photo.tif")}],
                                                 "output": {"dir": str(root / "out-order")}})["id"] for _ in range(5)]
    views = [wait_for(server.conn, i) for i in ids]
    starts = [v["started"] for v in views]
    assert starts == sorted(starts)
    for a, b in zip(views, views[1:]):
        assert b["started"] >= a["finished"] - 1e-3  # one heavy job at a time


def test_load_four_clients_25_jobs_each_nothing_crossed_or_lost(server, root):
    folder = root / "load"
    folder.mkdir()
    rng = np.random.default_rng(7)
    inputs = []
    for i in range(100):
        path = folder / f"img_{i:03d}.tif"
        tifffile.imwrite(path, (rng.random((24, 32, 3)) * 65535).astype(np.uint16), photometric="rgb")
        inputs.append(path)
    results: dict[str, str] = {}
    errors: list[str] = []

    def client(chunk):
        conn = Connection(server.info)
        try:
            jobs = [(p, conn.json("POST", "/v1/jobs", {"operator": "bin", "inputs": [{"path": str(p)}],
                                                       "output": {"dir": str(root / "load-out")}})["id"]) for p in chunk]
            for p, job_id in jobs:
                view = wait_for(conn, job_id)
                results[str(p)] = view["results"][0]["output"]
        except Exception as err:  # reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=client, args=(inputs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert errors == [] and len(results) == 100
    assert len(set(results.values())) == 100 and len(list((root / "load-out").iterdir())) == 100
    for src, out in results.items():
        assert os.path.basename(out).startswith(os.path.basename(src)[:-4] + "_pyops-bin")
        np.testing.assert_allclose(read_image(out).pixels, np.clip(pyops.run("bin", src), 0, 1), atol=2e-5)
