"""A private virtual screen for GUI tests: Xvfb on a random display number, ready when its number is read back."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import missing


def _free(n: int) -> bool:
    return not (Path(f"/tmp/.X{n}-lock").exists() or Path(f"/tmp/.X11-unix/X{n}").exists())


@contextlib.contextmanager
def virtual_screen(size: str = "1280x1024x24") -> Iterator[str]:
    """Yield a DISPLAY value (":N") served by a fresh Xvfb, killed on exit.

    A random high display number keeps clear of other X servers on a shared machine (a second Xvfb that
    takes over display :0 unlinks the first one's socket); `-displayfd` makes Xvfb write the number once it
    accepts connections, so there is no start-up race."""
    if shutil.which("Xvfb") is None:
        missing("Xvfb is not installed")
    rng = random.Random()
    for _ in range(20):
        n = rng.randrange(100, 30000)
        if not _free(n):
            continue
        r_fd, w_fd = os.pipe()
        proc = subprocess.Popen(["Xvfb", f":{n}", "-displayfd", str(w_fd), "-screen", "0", size, "-nolisten", "tcp"],
                                pass_fds=(w_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w_fd)
        with os.fdopen(r_fd, "rb") as pipe:
            ready = pipe.read(16).decode().strip()  # empty when Xvfb exits without serving
        if ready == str(n):
            try:
                yield f":{n}"
            finally:
                proc.kill()
                proc.wait()
            return
        proc.kill()
        proc.wait()
    raise RuntimeError("could not start Xvfb on any display number")
