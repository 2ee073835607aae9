"""A real `pyops serve` on 127.0.0.1 and an ephemeral port, in a private runtime folder, for the tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyops.client import Connection


@dataclass
class Server:
    proc: subprocess.Popen
    info: dict
    env: dict
    root: Path

    @property
    def conn(self) -> Connection:
        return Connection(self.info)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def server_env(base: Path) -> dict:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(base / "run"), XDG_CACHE_HOME=str(base / "cache"),
               HOME=str(base / "home"), XDG_DATA_HOME=str(base / "data"))
    for d in ("run", "cache", "home", "data"):
        (base / d).mkdir(parents=True, exist_ok=True)
    return env


def start_server(base: Path, root: Path, *args: str, nice: int = 0) -> Server:
    """`pyops serve` allowed under `root`, its folders under `base`; `nice` lowers its CPU priority (a GUI test's
    host must stay responsive while a job takes both cores)."""
    env = server_env(base)
    state = base / "run" / "pyops" / "server.json"
    state.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pyops", "serve", "--port", "0", "--allow-root", str(root), *args]
    proc = subprocess.Popen(["nice", "-n", str(nice), *command] if nice else command,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read()}")
            if state.exists():
                info = json.loads(state.read_text())
                try:
                    Connection(info).json("GET", "/v1/health", timeout=2)
                    return Server(proc, info, env, root)
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")
    except BaseException:
        proc.kill()  # no server outlives a test that could not use it
        proc.wait()
        raise
