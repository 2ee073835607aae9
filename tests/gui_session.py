"""Drive a real application's GUI as a user does: a private X screen and session bus, the widgets found through
the accessibility bus (tests/atspi_tree.py reads where the running application drew them), and mouse clicks
and key presses sent through the X server's XTEST extension (python-xlib), the same events a mouse and a
keyboard make. No fixed pixel positions: every click aims at a rectangle read from the application."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.conftest import ROOT, missing
from tests.xvfb import virtual_screen

SYSTEM_PYTHON = "/usr/bin/python3"  # has gi's Atspi (Debian's gir1.2-atspi-2.0); the venv has not


@dataclass(frozen=True)
class Widget:
    role: str
    name: str
    x: int
    y: int
    w: int
    h: int
    path: str
    children: int
    selected: bool  # the highlighted menu item, the focused widget

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2

    def inside(self, other: Widget) -> bool:
        return self.path.startswith(other.path + "/")


def require_gui_tools() -> None:
    """What the GUI tests need besides the hosts: a session bus, the accessibility bus and Python's Atspi."""
    if shutil.which("dbus-daemon") is None or not Path("/usr/libexec/at-spi-bus-launcher").exists():
        missing("dbus-daemon / at-spi2-core are not installed")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('Atspi', '2.0')"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        missing("the system Python has no Atspi (gir1.2-atspi-2.0, python3-gi)")
    try:
        import Xlib.ext.xtest  # noqa: F401
    except ImportError:
        missing("python-xlib is not installed (pip install -e .[test])")


class Desktop:
    """One virtual screen with its own session bus; `env` is what applications started on it need."""

    def __init__(self, display: str, env: dict):
        from Xlib import display as xdisplay

        self.display, self.env = display, env
        self._x = xdisplay.Display(display)

    def close(self) -> None:
        self._x.close()

    # -- reading the screen ---------------------------------------------------------------------------------
    def widgets(self, app: str) -> list[Widget]:
        """Every widget `app` shows, in tree order."""
        out = subprocess.run([SYSTEM_PYTHON, str(ROOT / "tests" / "atspi_tree.py"), app], env=self.env,
                             capture_output=True, text=True, timeout=60, check=False)
        return [Widget(**json.loads(line)) for line in out.stdout.splitlines() if line.startswith("{")]

    def wait_for(self, app: str, find: Callable[[list[Widget]], object], timeout: float = 120,
                 what: str = "") -> object:
        """Poll `app`'s widgets until `find` returns something truthy; fail with what was on screen."""
        deadline = time.time() + timeout
        while True:
            widgets = self.widgets(app)
            found = find(widgets)
            if found:
                return found
            if time.time() > deadline:
                names = sorted({f"{w.role}:{w.name}" for w in widgets if w.name})
                raise AssertionError(f"{app}: no {what or find} within {timeout:.0f} s; on screen: {names[:200]}")
            time.sleep(0.5)

    def screenshot(self, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The screen (or `box` = x, y, w, h) as an RGB uint8 array."""
        from Xlib import X

        root = self._x.screen().root
        g = root.get_geometry()
        x, y, w, h = box or (0, 0, g.width, g.height)
        x, y = max(x, 0), max(y, 0)  # a window may reach past the screen's edges
        w, h = min(w, g.width - x), min(h, g.height - y)
        raw = root.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF).data
        return np.frombuffer(raw, np.uint8).reshape(h, w, 4)[..., 2::-1].copy()  # BGRX → RGB

    # -- input ----------------------------------------------------------------------------------------------
    def _keycode(self, key: str) -> int:
        from Xlib import XK

        sym = XK.string_to_keysym(key)
        if sym == 0:
            raise ValueError(f"unknown key {key!r}")
        return self._x.keysym_to_keycode(sym)

    def _fake(self, event: int, detail: int) -> None:
        from Xlib.ext import xtest

        xtest.fake_input(self._x, event, detail)
        self._x.sync()
        time.sleep(0.05)

    def move(self, x: int, y: int) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        xtest.fake_input(self._x, X.MotionNotify, x=x, y=y)
        self._x.sync()
        time.sleep(0.15)

    def click(self, target: Widget | tuple[int, int], double: bool = False, holding: tuple[str, ...] = ()) -> None:
        """Move to the centre of `target` (a widget or a point) and click button 1, optionally while holding keys
        (e.g. ("Control_L",) for a ctrl+click), twice for a double click."""
        from Xlib import X

        x, y = target.centre if isinstance(target, Widget) else target
        self.move(x, y)
        held = [self._keycode(k) for k in holding]
        for code in held:
            self._fake(X.KeyPress, code)
        for _ in range(2 if double else 1):
            self._fake(X.ButtonPress, 1)
            self._fake(X.ButtonRelease, 1)
        for code in reversed(held):
            self._fake(X.KeyRelease, code)
        time.sleep(0.3)

    def key(self, *keys: str) -> None:
        """Press `keys` together (e.g. "Control_L", "F9") and release them in reverse order."""
        from Xlib import X

        codes = [self._keycode(k) for k in keys]
        for code in codes:
            self._fake(X.KeyPress, code)
        for code in reversed(codes):
            self._fake(X.KeyRelease, code)
        time.sleep(0.3)


@contextlib.contextmanager
def desktop(env: dict, runtime: Path) -> Iterator[Desktop]:
    """A virtual screen and a private session bus (its socket in `runtime`, so an application started in the
    trixie chroot with that folder bound reaches it too); the accessibility bus starts on demand from it."""
    require_gui_tools()
    with virtual_screen() as display:
        bus = runtime / "session-bus"
        bus.unlink(missing_ok=True)
        env = {**env, "DISPLAY": display}
        env.pop("NO_AT_BRIDGE", None)
        daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", f"--address=unix:path={bus}",
                                   "--print-address=1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True)
        try:
            env["DBUS_SESSION_BUS_ADDRESS"] = daemon.stdout.readline().strip()
            screen = Desktop(display, env)
            try:
                yield screen
            finally:
                screen.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()  # the accessibility bus it started on demand is in its process group
