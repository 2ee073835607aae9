"""The Debian trixie chroot with darktable 5 and GIMP 3 (tests/trixie/build.sh makes it; DESIGN.md §4–5)."""
from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from tests.conftest import missing

TRIXIE = Path(os.environ.get("PYOPS_TRIXIE", "/var/cache/pyops/trixie"))


def require_trixie(what: str) -> None:
    if not (TRIXIE / ".pyops-ready").exists() or shutil.which("unshare") is None:
        missing(f"no trixie chroot with {what} at {TRIXIE} (tests/trixie/build.sh)")


def in_chroot(args: list[str], env: dict, binds: list[Path]) -> list[str]:
    """Run `args` inside the trixie chroot, in a private mount namespace (nothing stays mounted), with `binds`
    visible at the same paths and only `env` in the environment."""
    r = shlex.quote(str(TRIXIE))
    lines = ["set -e", f"mount -t proc proc {r}/proc", f"mount --rbind /dev {r}/dev"]
    for b in binds:
        q = shlex.quote(str(b))
        lines += [f"mkdir -p {r}{q}", f"mount --bind {q} {r}{q}"]
    keep = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    lines.append(f"exec chroot {r} /usr/bin/env -i {keep} {' '.join(shlex.quote(a) for a in args)}")
    return ["unshare", "-m", "sh", "-c", "\n".join(lines)]
