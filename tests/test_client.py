"""`pyops client` as darktable's script will run it: starts the server on demand, prints the line protocol."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pyops import provenance
from pyops.registry import operators
from pyops.server import state
from tests.conftest import CANON_CHECKER, missing, need
from tests.server_helpers import server_env
from tests.test_server import _big_raw


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("client")
    root = base / "photos with spaces"
    root.mkdir()
    shutil.copy(need(CANON_CHECKER), root / "IMG 0101.CRW")
    rng = np.random.default_rng(0)
    tifffile.imwrite(root / "dark photo.tif", (rng.random((64, 96, 3)) * 3000).astype(np.uint16), photometric="rgb")
    e = server_env(base)
    e["PYOPS_ALLOW_ROOTS"] = str(root)
    yield e, root
    subprocess.run([sys.executable, "-m", "pyops", "client", "stop"], env=e, capture_output=True, timeout=60)


def client(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pyops", "client", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _events(stdout):
    return [line.split("\t") for line in stdout.splitlines()]


def _server_pid(env):
    info = json.loads(open(os.path.join(env["XDG_RUNTIME_DIR"], "pyops", "server.json")).read())
    return info["pid"]


def test_client_starts_the_server_and_reports_progress_and_results(env):
    e, root = env
    assert not os.path.exists(os.path.join(e["XDG_RUNTIME_DIR"], "pyops", "server.json"))
    res = client(e, "run", "twostop", root / "IMG 0101.CRW")
    assert res.returncode == 0, res.stderr
    ev = _events(res.stdout)
    assert ev[0][0] == "job" and ev[0][2] == str(root / "IMG 0101.CRW")
    progress = [float(x[1]) for x in ev if x[0] == "progress"]
    assert progress and progress == sorted(progress) and 0 <= progress[0] and progress[-1] <= 1
    (result,) = [x for x in ev if x[0] == "result"]
    assert result[1] == str(root / "IMG 0101.CRW") and result[2] == str(root / "IMG 0101_pyops-twostop.tif")
    assert ev[-1] == ["done", "1", "0"]
    rec = provenance.read(result[2])
    assert rec["operator"] == "twostop" and rec["source"] == str(root / "IMG 0101.CRW")

    pid = _server_pid(e)
    res = client(e, "run", "boost", root / "dark photo.tif", "--ev", "auto", "--json")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[-1] == {"event": "done", "ok": 1, "failed": 0}
    result = next(x for x in events if x["event"] == "result")
    assert provenance.read(result["output"])["parameters"]["ev"] == "auto"
    assert _server_pid(e) == pid  # the running server was reused
    direct = subprocess.run([sys.executable, "-m", "pyops", "run", "boost", root / "dark photo.tif", "--ev", "auto",
                             "--json", "-o", root / "direct"], env=e, capture_output=True, text=True, timeout=300)
    assert result["info"] == json.loads(direct.stdout.splitlines()[-1])["info"]  # the same info as `pyops run`


def test_client_reports_each_failed_file_and_goes_on(env):
    e, root = env
    (root / "notes.NEF").write_text("text")
    res = client(e, "run", "boost", root / "notes.NEF", root / "missing.tif", root / "dark photo.tif")
    assert res.returncode == 1
    ev = _events(res.stdout)
    errors = {x[1]: x[2] for x in ev if x[0] == "error"}
    assert "not a raw file" in errors[str(root / "notes.NEF")]
    assert "not found" in errors[str(root / "missing.tif")]
    assert [x[1] for x in ev if x[0] == "result"] == [str(root / "dark photo.tif")]
    assert ev[-1] == ["done", "1", "2"]


def test_client_bad_parameter_is_one_line_exit_2(env):
    e, root = env
    res = client(e, "run", "boost", root / "dark photo.tif", "--ev", "99")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "ev: input should be less than or equal to 16" in res.stderr


def test_client_upload_mode_downloads_the_result(env, tmp_path):
    e, root = env
    res = client(e, "run", "bin", "--upload", root / "dark photo.tif", "-o", tmp_path)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dark photo_pyops-bin.tif"]
    assert provenance.read(tmp_path / "dark photo_pyops-bin.tif")["operator"] == "bin"


def test_sigterm_cancels_the_clients_jobs(env):
    e, root = env
    big = _big_raw(root)
    out_dir = root / "cancelled"
    proc = subprocess.Popen([sys.executable, "-m", "pyops", "client", "run", "twostop", str(big), "-o", str(out_dir)],
                            env=e, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("progress") and "developing" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 130
    assert rest.splitlines()[-1] == "cancelled"
    time.sleep(0.5)
    assert not out_dir.exists() or [p for p in out_dir.iterdir() if not p.name.startswith(".")] == []


def test_schema_json_is_the_registry_and_lua_parses(env, tmp_path):
    e, _ = env
    js = client(e, "schema", "--format", "json")
    assert js.returncode == 0
    assert [o["name"] for o in json.loads(js.stdout)] == [o.name for o in operators()]
    lua = client(e, "schema", "--format", "lua")
    assert lua.returncode == 0 and lua.stdout.startswith("return {")
    exe = shutil.which("lua5.4") or shutil.which("lua")
    if exe is None:
        missing("no Lua interpreter (lua5.4)")
    (tmp_path / "schema.lua").write_text(lua.stdout)
    check = ('local ops = dofile(arg[1]); local names = {}; '
             'for _, o in ipairs(ops) do names[#names + 1] = o.name .. ":" .. #o.params end; '
             'print(table.concat(names, ","))')
    res = subprocess.run([exe, "-e", f"arg = {{'{tmp_path / 'schema.lua'}'}}", "-e", check], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ",".join(f"{o.name}:{len(o.params.model_fields)}" for o in operators())


FIELD = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def _unescape(field):
    return re.sub(r"\\(.)", lambda m: FIELD[m.group(1)], field)


def test_tabs_newlines_and_backslashes_in_paths_are_escaped_not_mangled(env, tmp_path):
    e, root = env
    odd = root / "a\tb\\c\nd\re.tif"
    shutil.copy(root / "dark photo.tif", odd)
    res = client(e, "run", "bin", odd, "-o", root / "odd-out")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")[:-1]
    assert all(line.count("\t") == 2 for line in lines)
    ev = [[_unescape(f) for f in line.split("\t")] for line in lines]
    assert ev[0][2] == str(odd)
    (result,) = [x for x in ev if x[0] == "result"]
    assert result[1] == str(odd) and Path(result[2]).is_file() and Path(result[2]).parent == root / "odd-out"
    exe = shutil.which("lua5.4") or shutil.which("lua")
    if exe is None:
        missing("no Lua interpreter (lua5.4)")
    lua = Path(__file__).parent.parent / "lua" / "pyops.lua"
    code = "\n".join(line for line in lua.read_text().splitlines() if "FIELD_ESCAPES" in line)
    check = code + '\nfor line in io.lines(arg[1]) do local k, a, b = line:match("^(%a+)\\t([^\\t]*)\\t?(.*)$"); ' \
        'io.write(k, "|", unescape_field(a), "|", unescape_field(b), "\\0") end'
    (tmp_path / "out.txt").write_text(res.stdout)
    parsed = subprocess.run([exe, "-e", f"arg = {{'{tmp_path / 'out.txt'}'}}", "-e", check], capture_output=True)
    assert parsed.returncode == 0, parsed.stderr
    assert parsed.stdout.decode().split("\0")[:-1] == ["|".join(x + [""] * (3 - len(x))) for x in ev]


def test_a_refusal_after_following_the_roots_hint_says_the_running_server_keeps_its_roots(env, tmp_path):
    e, root = env
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(root / "dark photo.tif", other / "p.tif")
    pid = _server_pid(e)
    res = client(dict(e, PYOPS_ALLOW_ROOTS=os.pathsep.join([str(root), str(other)])), "run", "bin", other / "p.tif")
    assert res.returncode == 1
    (error,) = [x for x in _events(res.stdout) if x[0] == "error"]
    assert "outside the allowed roots" in error[2]
    assert f"running server (pid {pid}) was started with roots {root}" in error[2]
    assert "`pyops client stop`" in error[2] and "PYOPS_ALLOW_ROOTS" in error[2]


def test_status_and_stop(env, tmp_path):
    fresh = server_env(tmp_path)
    assert client(fresh, "status").returncode == 1
    e, root = env
    status = client(e, "status")
    assert status.returncode == 0 and status.stdout.startswith("pyops server")
    assert f"roots: {root}\n" in status.stdout and "{" not in status.stdout
    pid = _server_pid(e)
    stop = client(e, "stop")
    assert stop.returncode == 0 and stop.stdout == f"pyops server {pid} stopped\n"
    assert not state.pid_alive(pid) and not os.path.exists(os.path.join(e["XDG_RUNTIME_DIR"], "pyops", "server.json"))


@pytest.mark.parametrize("why, fix", [("runtime", "cannot use"), ("roots", "is not a folder")])
def test_a_server_that_cannot_start_is_one_line_saying_why_and_what_to_run(env, tmp_path, why, fix):
    """What darktable's script and the GIMP plug-in show when no server can start: one line with the reason and
    the command to try, never the server's traceback."""
    e, root = env
    bad = dict(e, XDG_RUNTIME_DIR="/proc/no-such-folder") if why == "runtime" else \
        dict(server_env(tmp_path), PYOPS_ALLOW_ROOTS=str(tmp_path / "missing"))
    res = client(bad, "run", "boost", str(root / "dark photo.tif"))
    (error,) = [line for line in res.stdout.splitlines() if line.startswith("error\t")]
    message = error.split("\t")[2]
    assert message.startswith("could not start the pyops server (") and fix in message, message
    assert message.endswith("run `pyops serve` in a terminal to see why")
    assert "Traceback" not in res.stdout + res.stderr and "\\n" not in message
