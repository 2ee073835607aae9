"""Where a running server can be found: `$XDG_RUNTIME_DIR/pyops/server.json` (0600, in a 0700 folder) holds its
pid, address and token, like Jupyter's runtime files. Only the user who started it can read the token."""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from pyops.io.files import pid_alive


def _private(d: Path) -> bool:
    """Make `d` (its parent must exist) or accept it if it is a real folder of ours; then mode 0700. False if it
    is a symlink or belongs to someone else (who could read or replace the state file)."""
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False
    os.chmod(d, 0o700)
    return True


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/pyops`; without XDG_RUNTIME_DIR, `/tmp/pyops-<uid>` if it is ours (not made by another
    user, not a symlink), else `~/.cache/pyops/run`. Server and clients pick the same one."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        d = Path(os.environ["XDG_RUNTIME_DIR"]) / "pyops"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        return d
    d = Path(tempfile.gettempdir()) / f"pyops-{os.getuid()}"
    if _private(d):
        return d
    d = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyops" / "run"
    d.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _private(d):
        raise RuntimeError(f"no private folder for the server's state: {d} is not a folder of this user")
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


def is_server(pid: int) -> bool:
    """Whether `pid` is a live `pyops serve` process (not another program that got the pid of a dead server)."""
    if not pid_alive(pid):
        return False
    try:
        return b"pyops" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the state file
