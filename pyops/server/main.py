"""`pyops serve`: start the operator server (in the foreground, or detached) and keep it warm."""
from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pyops import __version__
from pyops.server import state
from pyops.server.app import LOOPBACK

log = logging.getLogger("pyops.server")


def spool_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyops" / "spool"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def own_names(host: str) -> set[str]:
    """The Host names a client may use for a server bound to `host`: itself, and for a wildcard address
    (0.0.0.0, ::) the machine's name and its addresses (from its name and the interfaces with a route out)."""
    if host not in ("0.0.0.0", "::"):
        return {host.lower()}
    names = {host, socket.gethostname().lower(), socket.getfqdn().lower()}
    for name in list(names):
        try:
            names |= {str(ai[4][0]).split("%")[0].lower() for ai in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):  # no packet is sent
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                names.add(s.getsockname()[0].split("%")[0].lower())
        except OSError:
            pass
    return names


def _sweep(spool, manager, interval: float) -> None:
    """Every `interval` s, remove the spool's expired uploads and results (not those of live jobs)."""
    while not manager.stopping.wait(interval):
        live = manager.active()
        spool.sweep({j.id for j in live} | {f.name for j in live for f in j.cleanup})


def _warm_up() -> None:
    """Load every operator's compiled kernels (numba cache) so the first real job does not wait for them."""
    import numpy as np

    import pyops
    from pyops.mosaic import RawMosaic

    img = np.full((8, 8, 3), 0.1, np.float32)
    for domain in ("rgb", "luminance"):
        pyops.run("bin", img, domain=domain)
    pyops.run("bin", img, factor=1.5)
    pyops.run("bin", RawMosaic(np.full((8, 8), 100, np.uint16), np.array([[0, 1], [1, 2]], np.uint8),
                               np.zeros((2, 2), np.float32), 1023.0), domain="bayer")
    for method in ("gain", "power", "auto_gamma", "equalize", "clahe"):
        pyops.run("boost", img, method=method)
    from pyops.ops.deconv import fft

    fft.load_wisdom()  # FFTW plans made by earlier processes
    pyops.run("deconvolve", np.full((32, 32), 0.1, np.float32), iterations=2)
    log.info("operators warm")


def _running() -> dict | None:
    """The state of a live, answering server, or None."""
    from pyops.client import connect

    try:
        return connect(start=False).info
    except ConnectionError:
        return None


def _detach(argv: list[str]) -> int:
    info = _running()
    if info:
        print(f"pyops server already running: pid {info['pid']}, {info['url']}")
        return 0
    logfile = state.runtime_dir() / "server.log"
    with open(logfile, "ab") as log_fh:
        child = subprocess.Popen([sys.executable, "-m", "pyops", "serve", *argv], stdin=subprocess.DEVNULL,
                                 stdout=log_fh, stderr=log_fh, start_new_session=True, close_fds=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if child.poll() is not None:
            tail = logfile.read_text(errors="replace").splitlines()[-5:]
            print("pyops: server did not start:\n" + "\n".join(tail), file=sys.stderr)
            return 1
        info = _running()
        if info and info["pid"] == child.pid:
            print(f"pyops server running: pid {child.pid}, {info['url']} (log: {logfile})")
            return 0
        time.sleep(0.1)
    child.kill()
    print("pyops: server did not answer within 60 s", file=sys.stderr)
    return 1


def serve(host: str, port: int, roots: list[Path], workers: int, detach: bool, max_megapixels: float,
          time_limit: float, allow_remote: bool, argv: list[str], scheduler: str | None = None,
          spool_quota_mb: float = 4096.0, spool_ttl: float = 3600.0, max_memory_gb: float | None = None) -> int:
    if host not in LOOPBACK and not allow_remote:
        print(f"pyops: error: binding {host} would expose the server beyond this machine; add --allow-remote "
              "if that is really wanted", file=sys.stderr)
        return 2
    try:
        state.runtime_dir()  # where the state file (URL, token) and the log go
    except OSError as err:
        print(f"pyops: error: cannot use {err.filename}: {err.strerror} (set XDG_RUNTIME_DIR to a folder you can "
              "write)", file=sys.stderr)
        return 2
    if detach:
        return _detach([a for a in argv if a != "--detach"])
    running = _running()
    if running:
        print(f"pyops: error: a pyops server is already running (pid {running['pid']}, {running['url']})",
              file=sys.stderr)
        return 1
    if host not in LOOPBACK:
        print(f"pyops: WARNING: serving on {host}: anyone who can reach it and has the token can run jobs on "
              "files under the allowed roots", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    import uvicorn

    from pyops.server.app import ServerConfig, create_app
    from pyops.memory import default_limit
    from pyops.server.jobs import JobManager

    real_roots = [Path(r).expanduser().resolve() for r in (roots or [Path.home()])]
    for r in real_roots:
        if not r.is_dir():
            print(f"pyops: error: allowed root {r} is not a folder", file=sys.stderr)
            return 2
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        print(f"pyops: error: cannot listen on {host}:{port}: {err}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    config = ServerConfig(token=secrets.token_urlsafe(32), roots=real_roots, spool=spool_dir(), workers=workers,
                          time_limit=time_limit, max_megapixels=max_megapixels, spool_quota_mb=spool_quota_mb,
                          max_memory=int(max_memory_gb * 1e9) if max_memory_gb is not None else default_limit(workers),
                          spool_ttl=spool_ttl, extra_hosts=set() if host in LOOPBACK else own_names(host))
    manager = JobManager(workers, time_limit, scheduler)
    app = create_app(config, manager)
    app.state.spool.clear()
    threading.Thread(target=_sweep, args=(app.state.spool, manager, min(60.0, spool_ttl / 4)), daemon=True,
                     name="pyops-spool-sweep").start()

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            """SIGTERM/SIGINT: cancel the jobs and end the event streams now (uvicorn's graceful shutdown waits
            for every open response), then let uvicorn shut down."""
            manager.stop()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
    for sig in (signal.SIGTERM, signal.SIGINT):
        # uvicorn restores these handlers after its shutdown and raises the signal again: with the default
        # action the process would die there, before the jobs are stopped and the state file removed below
        signal.signal(sig, server.handle_exit)
    url_host = f"[{host}]" if ":" in host else host
    state.write_state({"pid": os.getpid(), "host": host, "port": port, "url": f"http://{url_host}:{port}",
                       "token": config.token, "version": __version__, "roots": [str(r) for r in real_roots],
                       "started": time.time()})
    threading.Thread(target=_warm_up, daemon=True, name="pyops-warm-up").start()
    log.info("pyops %s serving on http://%s:%d, roots %s", __version__, url_host, port,
             ", ".join(map(str, real_roots)))
    try:
        server.run(sockets=[sock])
    finally:
        stopped = manager.shutdown(timeout=5)
        state.remove_state(os.getpid())
        log.info("pyops server stopped")
    if not stopped:  # a job step that does not report progress: its output is a temp file, never a result
        log.warning("a job did not stop within 5 s; exiting without waiting for it")
        logging.shutdown()
        os._exit(1)
    return 0
