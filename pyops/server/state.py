"""Where a running server can be found: `$XDG_RUNTIME_DIR/pyops/server.json` (0600, in a 0700 folder) holds its
pid, address and token, like Jupyter's runtime files. Only the user who started it can read the token."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(tempfile.gettempdir(), f"pyops-{os.getuid()}")
    d = Path(base) / "pyops"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    return d


def state_path() -> Path:
    return runtime_dir() / "server.json"


def write_state(info: dict) -> Path:
    """Write the state file atomically with mode 0600 from the start (never readable by others)."""
    path = state_path()
    tmp = path.with_name(f".server.{os.getpid()}.json")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)
    return path


def read_state() -> dict | None:
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None


def remove_state(pid: int) -> None:
    """Remove the state file if it still describes the server `pid`."""
    info = read_state()
    if info and info.get("pid") == pid:
        state_path().unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
