"""Safe files: inputs checked before use, outputs written to a temp file in the target folder and published
under a final name that never replaces an existing file."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable


TEMP_PREFIX = ".pyops-"  # write_atomic's temp files: .pyops-<pid>@<host>-<random><suffix>
STALE_AFTER = 60.0  # s since a dead process last wrote its temp file before it is removed


class InputError(ValueError):
    """An input that cannot be used; the message names the file and the reason in one line."""


class OutputError(ValueError):
    """An output folder that cannot be used; the message names it and the reason in one line."""


def check_input(path: Path) -> Path:
    """A readable, non-empty regular file, or InputError."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable")
    return path


def check_output_dir(directory: Path) -> Path:
    """`directory` if results can go there: an existing folder, or a new one whose parent exists (only the last
    component is ever created, so a mistyped path does not grow a tree of folders); else OutputError."""
    if directory.is_dir():
        return directory
    if directory.exists() or directory.is_symlink():
        raise OutputError(f"{directory}: not a folder (the output must be a folder)")
    if not directory.parent.is_dir():
        raise OutputError(f"{directory}: no such folder, and its parent {directory.parent} does not exist either")
    return directory


def host_tag() -> str:
    """A short tag of this machine's name: a temp file on shared storage is judged only by the machine whose
    process made it (a pid means nothing on another machine)."""
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temp_prefix(pid: int | None = None) -> str:
    """The name prefix of write_atomic's temp files made by process `pid` (default: this one) on this machine."""
    return f"{TEMP_PREFIX}{os.getpid() if pid is None else pid}@{host_tag()}-"


def sweep_stale_temps(directory: Path) -> list[Path]:
    """Remove temp files that write_atomic left in `directory` when its process was killed: named
    `.pyops-<pid>@<this host>-…` with a pid that is not running, regular files of this user, untouched for
    STALE_AFTER s. Returns the removed paths."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    here = f"@{host_tag()}"
    for entry in entries:
        pid, _, rest = entry.name[len(TEMP_PREFIX):].partition(here + "-")
        if not entry.name.startswith(TEMP_PREFIX) or not pid.isdigit() or not rest:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or time.time() - st.st_mtime < STALE_AFTER
                    or pid_alive(int(pid))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (ours or another user's); a zombie, exited but not yet reaped, does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def output_name(source: Path, op: str, suffix: str, n: int = 0) -> str:
    """`<stem>_pyops-<op>[_NN]<suffix>`."""
    return f"{source.stem}_pyops-{op}{'' if n == 0 else f'_{n:02d}'}{suffix}"


def _publish(tmp: Path, directory: Path, name_for: Callable[[int], str]) -> Path:
    """Give `tmp` the first free name; a hard link fails instead of replacing, so this is race-free."""
    for n in range(1000):
        final = directory / name_for(n)
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError as err:  # file systems without hard links
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if final.exists():
                continue
            os.replace(tmp, final)
            return final
        tmp.unlink()
        return final
    raise OSError(f"no free output name in {directory} for {name_for(0)}")


def write_atomic(directory: Path, name_for: Callable[[int], str], suffix: str, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a hidden temp file in `directory`, fsync it, then publish it under
    `name_for(0)`, `name_for(1)`, … (the first that does not exist). On any error the temp file is removed and
    no file appears under a final name. `directory` is made if only its last component is missing
    (check_output_dir); temp files that killed pyops processes left there are removed (sweep_stale_temps)."""
    check_output_dir(directory).mkdir(exist_ok=True)
    sweep_stale_temps(directory)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(), suffix=suffix, dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result is an ordinary file
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        return _publish(tmp, directory, name_for)
    finally:
        tmp.unlink(missing_ok=True)
