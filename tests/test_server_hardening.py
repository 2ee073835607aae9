"""The server under attack and at its edges (issue 10): PSF files and the roots, tokens in URLs, SIGTERM, the
spool's leftovers and quota, Host names of a server on 0.0.0.0, a private runtime folder, decompression bombs."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pyops import provenance
from pyops.client import SERVER_GONE, Connection, ServerError, wait_for
from pyops.server import state
from tests.server_helpers import start_server


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("root")
    rng = np.random.default_rng(0)
    tifffile.imwrite(d / "photo.tif", (rng.random((96, 128, 3)) * 40000).astype(np.uint16), photometric="rgb")
    return d


def _job(conn, **fields):
    return conn.json("POST", "/v1/jobs", {"operator": "deconvolve", **fields})


def _upload(conn: Connection, name: str, data: bytes) -> tuple[int, dict]:
    status, body = conn.request("POST", "/v1/uploads?" + urllib.parse.urlencode({"filename": name}), data,
                                {"Content-Type": "application/octet-stream"})
    return status, json.loads(body)


# --- #3: a PSF file goes through the roots check, and a refusal does not tell whether a file exists ----------

@pytest.mark.parametrize("psf", ["k.npy", "secret.tif", "sub/k.png", "~/k.npy"])
def test_a_relative_psf_file_is_refused_not_opened_in_the_servers_folder(server, root, psf):
    with pytest.raises(ServerError) as err:
        _job(server.conn, params={"psf": psf}, inputs=[{"path": str(root / "photo.tif")}])
    assert err.value.status == 422 and "must be an absolute path" in err.value.detail


def test_a_psf_file_outside_the_roots_is_403_whether_or_not_it_exists(server, root, tmp_path):
    np.save(tmp_path / "k.npy", np.ones((3, 3)))
    answers = []
    for psf in (tmp_path / "k.npy", tmp_path / "absent.npy", Path(f"{root}/../{tmp_path.name}/absent.npy")):
        with pytest.raises(ServerError) as err:
            _job(server.conn, params={"psf": str(psf)}, inputs=[{"path": str(root / "photo.tif")}])
        answers.append(err.value.status)
        assert "outside the allowed roots" in err.value.detail
    assert answers == [403, 403, 403]
    with pytest.raises(ServerError) as err:  # inputs alike
        _job(server.conn, inputs=[{"path": str(tmp_path / "absent.tif")}])
    assert err.value.status == 403


def test_a_psf_file_under_the_roots_is_used(server, root):
    k = np.zeros((5, 5))
    k[2, 1:4] = 1
    np.save(root / "line.npy", k)
    view = wait_for(server.conn, _job(server.conn, params={"psf": str(root / "line.npy"), "iterations": 3},
                                      inputs=[{"path": str(root / "photo.tif")}],
                                      output={"dir": str(root / "out-psf")})["id"])
    assert view["state"] == "done" and view["results"][0]["info"]["psf_shape"] == [5, 5]
    with pytest.raises(ServerError) as err:
        _job(server.conn, params={"psf": str(root / "nothing.npy")}, inputs=[{"path": str(root / "photo.tif")}])
    assert err.value.status == 404


# --- #10: the token in a URL only where a browser needs it, and /docs works in a browser ---------------------

def test_query_token_is_refused_except_for_the_docs_page_whose_schema_url_works(server, root):
    token = urllib.parse.quote(server.info["token"])
    anon = {"Authorization": ""}
    body = json.dumps({"operator": "boost", "inputs": [{"path": str(root / "photo.tif")}]}).encode()
    assert server.conn.request("POST", f"/v1/jobs?token={token}", body,
                               {**anon, "Content-Type": "application/json"})[0] == 401
    assert server.conn.request("GET", f"/v1/health?token={token}", headers=anon)[0] == 401
    assert server.conn.request("GET", f"/v1/jobs?token={token}", headers=anon)[0] == 401
    status, page = server.conn.request("GET", f"/docs?token={token}", headers=anon)
    assert status == 200
    (schema_url,) = re.findall(r"url: '([^']+)'", page.decode())
    status, schema = server.conn.request("GET", schema_url, headers=anon)
    assert status == 200 and json.loads(schema)["paths"]


# --- #11: a declared 60000×60000 PNG is refused at submit ------------------------------------------------------

def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_a_decompression_bomb_png_is_413_at_submit(server, root):
    _png_header_only(root / "bomb.png", 60000, 60000)
    assert (root / "bomb.png").stat().st_size < 100
    with pytest.raises(ServerError) as err:
        server.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"path": str(root / "bomb.png")}]})
    assert err.value.status == 413 and "3600.0 MP" in err.value.detail
    assert server.conn.json("GET", "/v1/health")["jobs"]["failed"] == 0


# --- #5 and #17: uploads and results do not stay; a quota; provenance names the upload ------------------------

def _spool(srv) -> Path:
    return Path(srv.env["XDG_CACHE_HOME"]) / "pyops" / "spool"


def test_uploads_go_when_their_job_ends_results_once_downloaded_and_a_quota_holds(tmp_path, root):
    stale = tmp_path / "cache" / "pyops" / "spool" / "uploads" / ("0" * 32)
    stale.mkdir(parents=True)
    (stale / "old.tif").write_bytes(b"left by a killed server")
    srv = start_server(tmp_path, root, "--spool-quota-mb", "1")
    try:
        conn, spool = srv.conn, _spool(srv)
        assert not stale.exists()  # cleaned at start
        status, up = _upload(conn, "photo.tif", (root / "photo.tif").read_bytes())
        assert status == 201
        job = conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"upload": up["upload_id"]}]})
        view = wait_for(conn, job["id"])
        assert view["state"] == "done"
        assert list((spool / "uploads").iterdir()) == []  # the upload went with its job
        status, data = conn.request("GET", view["results"][0]["download"])
        assert status == 200
        (tmp_path / "got.tif").write_bytes(data)
        assert provenance.read(tmp_path / "got.tif")["source"] == "photo.tif"  # not the spool path
        deadline = time.time() + 10
        while list((spool / "results").iterdir()) and time.time() < deadline:  # removed after the response
            time.sleep(0.02)
        assert list((spool / "results").iterdir()) == []
        assert conn.request("GET", view["results"][0]["download"])[0] == 410

        blob = os.urandom(600_000)
        status, first = _upload(conn, "a.npy", blob)
        assert status == 201
        status, body = _upload(conn, "b.npy", blob)  # 1.2 MB > 1 MB
        assert status == 507 and "--spool-quota-mb" in body["detail"]
        assert [p.name for p in (spool / "uploads").iterdir()] == [first["upload_id"]]
        assert conn.request("DELETE", f"/v1/uploads/{first['upload_id']}")[0] == 204
        assert list((spool / "uploads").iterdir()) == []
        assert conn.request("DELETE", f"/v1/uploads/{first['upload_id']}")[0] == 404
        assert conn.request("DELETE", "/v1/uploads/nope")[0] == 404
        assert _upload(conn, "b.npy", blob)[0] == 201
    finally:
        srv.stop()


def test_unused_uploads_expire(tmp_path, root):
    srv = start_server(tmp_path, root, "--spool-ttl", "0.5")
    try:
        status, up = _upload(srv.conn, "photo.tif", (root / "photo.tif").read_bytes())
        folder = _spool(srv) / "uploads" / up["upload_id"]
        deadline = time.time() + 30
        while folder.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert not folder.exists()
        with pytest.raises(ServerError) as err:
            srv.conn.json("POST", "/v1/jobs", {"operator": "boost", "inputs": [{"upload": up["upload_id"]}]})
        assert err.value.status == 404
    finally:
        srv.stop()


# --- #4: SIGTERM stops jobs and event streams at once; the client tells why its job ended -----------------------

def test_sigterm_cancels_a_followed_job_removes_the_state_and_exits_fast(tmp_path, root):
    rng = np.random.default_rng(2)
    big = root / "big.tif"
    if not big.exists():
        tifffile.imwrite(big, (rng.random((1500, 2000, 3)) * 40000).astype(np.uint16), photometric="rgb")
    out_dir = root / "out-sigterm"
    srv = start_server(tmp_path, root)
    state_file = Path(srv.env["XDG_RUNTIME_DIR"]) / "pyops" / "server.json"
    follower = subprocess.Popen([sys.executable, "-m", "pyops", "client", "run", "deconvolve", str(big), "--iterations",
                                 "1000", "--stop", "none", "-o", str(out_dir)], env=srv.env, stdout=subprocess.PIPE,
                                text=True)
    try:
        for line in follower.stdout:
            if line.startswith("progress") and "iteration" in line:
                break
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(timeout=30)
        took = time.monotonic() - t0
        rest = follower.stdout.read().splitlines()
        assert follower.wait(timeout=30) == 1
    finally:
        follower.kill()
        srv.stop(signal.SIGKILL)
    assert took < 10, took
    assert not state_file.exists()
    assert not out_dir.exists() or list(out_dir.iterdir()) == []  # no result, no hidden temp file
    assert rest[-2:] == [f"error\t{big}\t{SERVER_GONE}", "done\t0\t1"]
    log = srv.proc.stdout.read()
    assert "pyops server stopped" in log and "PosixPath" not in log and "Traceback" not in log


# --- #11: a server on 0.0.0.0 answers to the machine's own names -------------------------------------------------

def test_allow_remote_on_all_interfaces_accepts_the_machines_own_names(tmp_path, root):
    srv = start_server(tmp_path, root, "--host", "0.0.0.0", "--allow-remote")
    try:
        port = srv.info["port"]
        own = {socket.gethostname()}
        try:
            own |= {ai[4][0] for ai in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        except socket.gaierror:  # a machine whose name does not resolve: its name alone
            pass
        for host in own:
            assert srv.conn.request("GET", "/v1/health", headers={"Host": f"{host}:{port}"})[0] == 200, host
        assert srv.conn.request("GET", "/v1/health", headers={"Host": "evil.example"})[0] == 403
    finally:
        srv.stop()


# --- #11: without XDG_RUNTIME_DIR, a folder another user (or a symlink) holds is not used ----------------------

def test_runtime_dir_without_xdg_is_private_and_survives_a_squatter(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    mine = state.runtime_dir()
    assert mine == tmp_path / "tmp" / f"pyops-{os.getuid()}" and mine.stat().st_mode & 0o777 == 0o700
    mine.rmdir()
    elsewhere = tmp_path / "squatter"
    elsewhere.mkdir(mode=0o777)
    mine.symlink_to(elsewhere)  # what another user could have put there first
    got = state.runtime_dir()
    assert got == tmp_path / "cache" / "pyops" / "run"
    assert got.stat().st_mode & 0o777 == 0o700 and not got.is_symlink()
    assert list(elsewhere.iterdir()) == []


# --- #4: `pyops client stop` reports the truth -------------------------------------------------------------------

def _client(env, *args):
    return subprocess.run([sys.executable, "-m", "pyops", "client", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_client_stop_waits_and_says_when_the_server_is_still_running(tmp_path, root):
    srv = start_server(tmp_path, root)
    pid = srv.proc.pid
    try:
        os.kill(pid, signal.SIGSTOP)  # a server that cannot act on SIGTERM yet
        res = _client(srv.env, "stop", "--timeout", "1")
        assert res.returncode == 1 and f"(pid {pid}) is still running" in res.stderr and res.stdout == ""
        assert srv.proc.poll() is None
        os.kill(pid, signal.SIGCONT)  # the pending SIGTERM now stops it
        assert srv.proc.wait(timeout=30) == 0
        assert not (Path(srv.env["XDG_RUNTIME_DIR"]) / "pyops" / "server.json").exists()
    finally:
        if srv.proc.poll() is None:
            os.kill(pid, signal.SIGCONT)
        srv.stop()
    again = start_server(tmp_path, root)
    try:
        res = _client(again.env, "stop")
        assert res.returncode == 0 and res.stdout == f"pyops server {again.proc.pid} stopped\n"
        assert not state.pid_alive(again.proc.pid)
        assert _client(again.env, "stop").returncode == 1
    finally:
        again.stop()
