r"""`pyops client`: talk to the operator server (starting it if needed) and report in a line protocol that a
Lua script parses with patterns. One event per line, fields separated by TABs (paths may hold spaces):

    job<TAB>ID<TAB>INPUT                  a job was queued for INPUT
    progress<TAB>0.42<TAB>MESSAGE         overall fraction done, 0..1
    result<TAB>INPUT<TAB>OUTPUT           OUTPUT was written for INPUT
    error<TAB>INPUT<TAB>MESSAGE           INPUT failed; the others go on
    done<TAB>N_OK<TAB>N_FAILED            the end; exit code 0 only if nothing failed
    cancelled                             Ctrl-C or SIGTERM cancelled the remaining jobs (exit 130)

A field never holds a raw TAB, newline or carriage return: they are written as the two characters `\t`, `\n`,
`\r`, and a backslash as `\\` (undo it by replacing each backslash pair `\x`, left to right).

`--json` prints the same events as JSON objects instead (a `result` also carries the operator's `info`, as
`pyops run --json` does). Only the standard library is used for HTTP.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

from pyops.server import state


class ServerError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail", body.decode(errors="replace"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:500]
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: "
                         f"{str(d.get('msg')).removeprefix('Value error, ')}" for d in detail)
    return str(detail)


class Connection:
    """HTTP to one server described by its state file (host, port, token)."""

    def __init__(self, info: dict):
        self.info = info
        self.host, self.port = info["host"], int(info["port"])
        self.headers = {"Authorization": f"Bearer {info['token']}"}

    def _conn(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float | None = 60) -> tuple[int, bytes]:
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload: Any = None, timeout: float | None = 60) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        status, data = self.request(method, path, body, {"Content-Type": "application/json"}, timeout)
        if status >= 400:
            raise ServerError(status, _detail(data))
        return json.loads(data)

    def events(self, job_id: str) -> Iterator[dict]:
        """The job's server-sent events, each a job view, until it ends."""
        conn = self._conn(None)
        try:
            conn.request("GET", f"/v1/jobs/{job_id}/events", headers=self.headers)
            resp = conn.getresponse()
            if resp.status >= 400:
                raise ServerError(resp.status, _detail(resp.read()))
            for raw in resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data: "):
                    yield json.loads(line[6:])
        finally:
            conn.close()


def connect(start: bool = True, timeout: float = 60) -> Connection:
    """A connection to the running server; start one (detached) if there is none and `start` is set."""
    info = state.read_state()
    if info and state.pid_alive(info.get("pid", -1)):
        conn = Connection(info)
        try:
            conn.json("GET", "/v1/health", timeout=5)
            return conn
        except (OSError, ServerError):
            pass
    if not start:
        raise ConnectionError("no pyops server is running (start one with `pyops serve --detach`)")
    cmd = [sys.executable, "-m", "pyops", "serve", "--detach"]
    for root in filter(None, os.environ.get("PYOPS_ALLOW_ROOTS", "").split(os.pathsep)):
        cmd += ["--allow-root", root]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    info = state.read_state()
    if res.returncode != 0 or not info:
        lines = [line.strip() for line in (res.stderr or res.stdout).splitlines() if line.strip()]
        reason = lines[-1].removeprefix("pyops: ").removeprefix("error: ") if lines else "no reason given"
        raise ConnectionError(f"could not start the pyops server ({reason}); run `pyops serve` in a terminal to "
                              "see why")
    return Connection(info)


ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
SERVER_GONE = "the pyops server stopped while running this job"


def _field(text: Any) -> str:
    """One field of the line protocol: TAB, newline, CR and backslash escaped (see the module docstring)."""
    return "".join(ESCAPES.get(c, c) for c in str(text))


class Reporter:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def __call__(self, event: str, *fields: Any, info: dict | None = None) -> None:
        """Print one event; `info` (a result's measurements) goes into the JSON form only."""
        if self.as_json:
            keys = {"job": ("id", "input"), "progress": ("fraction", "message"), "result": ("input", "output"),
                    "error": ("input", "message"), "done": ("ok", "failed"), "cancelled": ()}[event]
            values = [str(f) if isinstance(f, Path) else f for f in fields]
            extra = {} if info is None else {"info": info}
            print(json.dumps({"event": event, **dict(zip(keys, values)), **extra}), flush=True)
        else:
            print("\t".join([event, *(_field(f) for f in fields)]), flush=True)


def _download(conn: Connection, url: str, name: str, dest: Path) -> Path:
    from pyops.io.files import write_atomic

    status, data = conn.request("GET", url, timeout=None)
    if status >= 400:
        raise ServerError(status, _detail(data))
    stem, suffix = Path(name).stem, Path(name).suffix
    return write_atomic(dest, lambda n: f"{stem}{'' if n == 0 else f'_{n:02d}'}{suffix}", suffix,
                        lambda tmp: tmp.write_bytes(data))


def run(op: str, params: dict[str, Any], files: list[Path], out_dir: Path | None, fmt: str | None,
        upload: bool, as_json: bool) -> int:
    """Submit one job per file, follow them in order, print the line protocol. Returns the exit code."""
    say = Reporter(as_json)
    try:
        conn = connect()
    except (ConnectionError, OSError, subprocess.TimeoutExpired) as err:
        for f in files:
            say("error", f, str(err))
        say("done", 0, len(files))
        return 1
    jobs: list[tuple[Path, str]] = []
    ok = failed = 0

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for f in files:
            try:
                if upload:
                    if not f.is_file():
                        raise ServerError(404, f"{f}: no such file")
                    ref = {"upload": _upload(conn, f)["upload_id"]}
                else:
                    ref = {"path": str(f.absolute())}
                output = {"format": fmt} if fmt else {}
                if out_dir is not None and not upload:
                    output["dir"] = str(out_dir.absolute())
                job = conn.json("POST", "/v1/jobs", {"operator": op, "params": params, "inputs": [ref],
                                                     "output": output})
                jobs.append((f, job["id"]))
                say("job", job["id"], f)
            except (ServerError, OSError) as err:
                failed += 1
                say("error", f, _roots_hint(conn, err) if isinstance(err, ServerError) else str(err))
        n = len(jobs) + failed
        for i, (f, job_id) in enumerate(jobs):
            last, view = None, None
            try:
                for view in conn.events(job_id):
                    done_frac = (failed + i + view["progress"]) / max(n, 1)
                    if view["message"] != last:
                        say("progress", round(done_frac, 4), view["message"])
                        last = view["message"]
            except (OSError, http.client.HTTPException):
                view = None  # the server went away mid-job
            if view is None or view["state"] not in ("done", "failed", "cancelled"):
                failed += 1
                say("error", f, SERVER_GONE)
                continue
            if view["state"] == "cancelled" and not view.get("error"):
                raise KeyboardInterrupt
            for r in view["results"]:
                if r["error"] or r["output"] is None:
                    failed += 1
                    say("error", f, r["error"] or view.get("error") or view["state"])
                elif upload:
                    out = _download(conn, r["download"], r["output"], out_dir or f.parent)
                    ok += 1
                    say("result", f, out, info=r["info"])
                else:
                    ok += 1
                    say("result", f, r["output"], info=r["info"])
            if not view["results"]:
                failed += 1
                say("error", f, view.get("error") or view["state"])
    except KeyboardInterrupt:
        for _, job_id in jobs:
            try:
                conn.json("DELETE", f"/v1/jobs/{job_id}", timeout=5)
            except (ServerError, OSError):
                pass
        say("cancelled")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    say("done", ok, failed)
    return 1 if failed else 0


def _roots_hint(conn: Connection, err: ServerError) -> str:
    """A refusal for a path outside the roots, with what to do when the server already running has other roots
    than PYOPS_ALLOW_ROOTS asks for (a running server keeps the roots it was started with)."""
    if err.status != 403 or "outside the allowed roots" not in err.detail:
        return err.detail
    info = conn.info
    return (f"{err.detail}. The running server (pid {info['pid']}) was started with roots "
            f"{', '.join(info.get('roots', []))} and keeps them: stop it with `pyops client stop` so that the next "
            "call starts one with the roots in PYOPS_ALLOW_ROOTS")


def stop(timeout: float = 15.0) -> int:
    """`pyops client stop`: SIGTERM the running server and wait until it has exited and removed its state file.
    Exit code 1, with the reason, if there is none or it is still running after `timeout` s."""
    info = state.read_state()
    if not info or not state.is_server(info.get("pid", -1)):
        print("pyops: no pyops server is running", file=sys.stderr)
        return 1
    pid = info["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.pid_alive(pid) and (state.read_state() or {}).get("pid") != pid:
            print(f"pyops server {pid} stopped")
            return 0
        time.sleep(0.05)
    if state.pid_alive(pid):
        print(f"pyops: error: the pyops server (pid {pid}) is still running {timeout:g} s after SIGTERM; "
              f"see its log {state.runtime_dir() / 'server.log'}, or end it with `kill -9 {pid}`", file=sys.stderr)
    else:
        state.remove_state(pid)
        print(f"pyops: error: the pyops server (pid {pid}) exited without removing its state file (removed now)",
              file=sys.stderr)
    return 1


def _upload(conn: Connection, path: Path) -> dict:
    status, data = conn.request("POST", "/v1/uploads?" + urllib.parse.urlencode({"filename": path.name}),
                                body=path.read_bytes(), headers={"Content-Type": "application/octet-stream"},
                                timeout=None)
    if status >= 400:
        raise ServerError(status, _detail(data))
    return json.loads(data)


def _lua(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_lua(v)}" for k, v in value.items()) + "}"
    s = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def schema(fmt: str) -> str:
    """Every operator and its parameters, as JSON or as a Lua table (`return { ... }`) for the darktable script.
    Parameters that suggest names from the PSF library carry the library's current names as `suggestions`."""
    from pyops.ops.deconv.psf import names
    from pyops.registry import operators

    ops = [{"name": o.name, "summary": o.summary, "raw_when": o.raw_when, "output": o.output, "params": o.describe()}
           for o in operators()]
    for p in (p for o in ops for p in o["params"] if p.get("suggest") == "psf_library"):
        p["suggestions"] = names()
    if fmt == "json":
        return json.dumps(ops, indent=1, default=str)
    return "return " + _lua(ops) + "\n"


def wait_for(conn: Connection, job_id: str, timeout: float = 600) -> dict:
    """Poll a job until it ends (for scripts and tests that do not follow events)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = conn.json("GET", f"/v1/jobs/{job_id}")
        if view["state"] in ("done", "failed", "cancelled"):
            return view
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {view['state']} after {timeout} s")
