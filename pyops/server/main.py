"""`pyops serve`: start the operator server (in the foreground, or detached) and keep it warm."""
from __future__ import annotations

import logging
import os
import secrets
import shutil
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


def _clean_spool(spool: Path, max_age_s: float = 86400) -> None:
    """Uploads and upload-mode results older than a day are removed when a server starts."""
    now = time.time()
    for sub in ("uploads", "results"):
        for entry in (spool / sub).glob("*"):
            if now - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry, ignore_errors=True)


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
          time_limit: float, allow_remote: bool, argv: list[str], scheduler: str | None = None) -> int:
    if host not in LOOPBACK and not allow_remote:
        print(f"pyops: error: binding {host} would expose the server beyond this machine; add --allow-remote "
              "if that is really wanted", file=sys.stderr)
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
    spool = spool_dir()
    _clean_spool(spool)
    config = ServerConfig(token=secrets.token_urlsafe(32), roots=real_roots, spool=spool, workers=workers,
                          time_limit=time_limit, max_megapixels=max_megapixels,
                          extra_hosts=set() if host in LOOPBACK else {host})
    manager = JobManager(workers, time_limit, scheduler)
    app = create_app(config, manager)
    url_host = f"[{host}]" if ":" in host else host
    state.write_state({"pid": os.getpid(), "host": host, "port": port, "url": f"http://{url_host}:{port}",
                       "token": config.token, "version": __version__, "roots": [str(r) for r in real_roots],
                       "started": time.time()})
    threading.Thread(target=_warm_up, daemon=True, name="pyops-warm-up").start()
    log.info("pyops %s serving on http://%s:%d, roots %s", __version__, url_host, port, real_roots)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        manager.shutdown()
        state.remove_state(os.getpid())
    return 0
