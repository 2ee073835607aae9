"""Safe files: inputs checked before use, outputs written to a temp file in the target folder and published
under a final name that never replaces an existing file."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable


class InputError(ValueError):
    """An input that cannot be used; the message names the file and the reason in one line."""


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
    no file appears under a final name."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".pyops-", suffix=suffix, dir=directory)
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
