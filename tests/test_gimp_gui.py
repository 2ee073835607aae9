"""GIMP 3.0 (the trixie chroot's) driven by the keyboard and the mouse on a virtual screen, as a photographer drives
it (tests/gui_session.py: widgets found through the accessibility bus, events sent through XTEST; no fixed
positions). A 16-bit photo is opened; Filters ▸ Enhance ▸ pyops ▸ Deconvolve… is reached from the menu bar with the
keyboard (Alt+R, then the arrow keys, each step checked against the highlighted item); OK in the dialog starts the
job; Cancel next to the progress bar in the image window's status bar stops it. The image must be as it was (the
window title's layer count and unsaved-changes mark), the job cancelled on the server, nothing left in its spool,
and GIMP still running without an error message."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from pyops.color import srgb_encode
from pyops.demo import scene
from tests.chroot import in_chroot
from tests.conftest import ROOT
from tests.gimp_helpers import install_plugin, require_gimp
from tests.gui_session import Desktop, Widget, desktop
from tests.server_helpers import Server, start_server

GIMP_GUI = "/usr/bin/gimp-3.0"
APP = "gimp"
PLUGIN = "pyops-gimp"  # the plug-in's own process shows its dialog (GimpUi.init's name)
PHOTO = (4000, 6000)  # rows, columns: 24 MP, the deconvolution runs long after Cancel is in reach
MENU = ["Enhance", "pyops", "Deconvolve…"]  # below Filters (Alt+R)
SCREENSHOTS = os.environ.get("PYOPS_SCREENSHOTS")  # docs/screenshots.sh sets it: the README's pictures


def _photo(path: Path) -> None:
    """A soft 16-bit sRGB photo of pyops's demo scene (gradient, zone plate, grey and colour patches), with grain."""
    scale = 4
    small = scene(PHOTO[0] // scale, PHOTO[1] // scale)
    soft = gaussian_filter(np.kron(small, np.ones((scale, scale, 1), np.float32)), (3, 3, 0))
    grain = np.random.default_rng(11).normal(0, 0.004, soft.shape).astype(np.float32)
    tifffile.imwrite(path, (srgb_encode(np.clip(soft + grain, 0, 1)) * 65535).astype(np.uint16), photometric="rgb")


def _named(widgets: list[Widget], name: str, *roles: str) -> Widget | None:
    return next((w for w in widgets if w.name == name and (not roles or w.role in roles)), None)


def _image_window(widgets: list[Widget]) -> Widget | None:
    """GIMP's image window, titled "[photo] (imported)-1.0 (RGB color 16-bit …, 1 layer) 6000x4000 – GIMP"."""
    return next((w for w in widgets if w.role == "frame" and "[photo]" in w.name), None)


def _save(screen: Desktop, work: Path, name: str, box: Widget) -> None:
    picture = screen.screenshot((box.x, box.y, box.w, box.h))
    iio.imwrite(work / f"{name}.png", picture)
    if SCREENSHOTS:
        iio.imwrite(Path(SCREENSHOTS) / f"{name}.png", picture)


def _walk_menu(screen: Desktop, path: list[str]) -> None:
    """From an open menu, reach `path`'s items with Down (checking which item is highlighted after each press) and
    Right into each submenu; Return on the last one."""
    for depth, name in enumerate(path):
        for _ in range(60):
            item = _named(screen.widgets(APP), name, "menu", "menu item")
            if item is not None and item.selected:
                break
            screen.key("Down")
        else:
            raise AssertionError(f"the menu item {name} was never highlighted")
        screen.key("Right" if depth < len(path) - 1 else "Return")


def _cancel_button(widgets: list[Widget]) -> Widget | None:
    """The button at the right of the status bar's progress bar (an icon without a label in GIMP 3.0)."""
    bar = next((w for w in widgets if w.role == "progress bar" and w.w > 0), None)
    if bar is None:
        return None
    buttons = [w for w in widgets if w.role == "push button" and abs(w.centre[1] - bar.centre[1]) < bar.h
               and w.x >= bar.x + bar.w - 2]
    return min(buttons, key=lambda b: b.x, default=None)


@contextlib.contextmanager
def _gimp(screen: Desktop, work: Path, photo: Path) -> Iterator[subprocess.Popen]:
    """GIMP 3.0 on `screen` with its own folders and the pyops plug-in as install.sh installs it, opening `photo`;
    killed after (its image is never saved)."""
    gimpdir = work / "gimp3"
    install_plugin(gimpdir, "/nonexistent/pyops")  # the test's server runs already: the plug-in never starts one
    (gimpdir / "gimprc").write_text("(show-welcome-dialog no)\n")
    keep = {k: screen.env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME", "DISPLAY",
                                       "DBUS_SESSION_BUS_ADDRESS")}
    keep.update(PATH="/usr/bin:/bin", LANG="C.UTF-8", GIMP3_DIRECTORY=str(gimpdir),
                XDG_CONFIG_HOME=str(work / "config"))
    args = [GIMP_GUI, "--no-splash", "-n", "-d", "-f", str(photo)]
    binds = [work.parent, ROOT, Path(sys.base_prefix), Path(sys.prefix), Path("/tmp/.X11-unix")]
    with open(work / "gimp.log", "w") as log:
        proc = subprocess.Popen(in_chroot(args, keep, binds), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            iio.imwrite(work / "last-screen.png", screen.screenshot())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _jobs(server: Server) -> list[dict]:
    return server.conn.json("GET", "/v1/jobs")


def _session(work: Path) -> dict:
    require_gimp()
    photos = work / "photos"
    photos.mkdir()
    photo = photos / "photo.tif"
    _photo(photo)
    # niced: the deconvolution takes both cores, GIMP and the accessibility bus must still answer promptly
    server = start_server(work, photos, nice=19)
    for name, spec in (("shake-0113", "motion:length=15,angle=30"), ("lens-f2", "moffat:fwhm=3,beta=2.5")):
        subprocess.run([sys.executable, "-m", "pyops", "psf", "save", name, spec], env=server.env, check=True,
                       capture_output=True)
    seen: dict = {}
    try:
        with desktop(server.env, work / "run") as screen, _gimp(screen, work, photo):
            window = screen.wait_for(APP, lambda ws: _named(ws, "Filters", "menu") and _image_window(ws), 240,
                                     "the photo's window with its menu bar")
            seen["title before"] = window.name
            screen.move(*_named(screen.widgets(APP), "Filters", "menu").centre)  # keys go to the window under it
            screen.key("Shift_L", "Control_L", "j")  # View ▸ Zoom ▸ Fit Image in Window
            screen.key("Alt_L", "r")
            _walk_menu(screen, MENU)
            dialog = screen.wait_for(PLUGIN, lambda ws: _named(ws, "pyops — deconvolve", "dialog"), 120,
                                     "the pyops — deconvolve dialog")
            ok = screen.wait_for(PLUGIN, lambda ws: _named(ws, "OK", "push button"), 30, "its OK button")
            seen["dialog"] = [w.name for w in screen.widgets(PLUGIN) if w.inside(dialog) and w.name]
            _save(screen, work, "gimp-dialog", dialog)
            screen.click(ok)
            cancel = screen.wait_for(APP, _cancel_button, 120, "the progress bar's Cancel button")
            deadline = time.time() + 120  # running, its first progress message in the status bar
            while not any(j["state"] == "running" and j["progress"] > 0 for j in _jobs(server)) \
                    and time.time() < deadline:
                time.sleep(0.5)
            seen["jobs running"] = _jobs(server)
            _save(screen, work, "gimp-progress", _image_window(screen.widgets(APP)))
            screen.click(cancel)
            deadline = time.time() + 120
            while any(j["state"] in ("queued", "running") for j in _jobs(server)) and time.time() < deadline:
                time.sleep(0.5)
            seen["jobs after"] = _jobs(server)
            widgets = screen.wait_for(APP, lambda ws: not _cancel_button(ws) and _image_window(ws) and ws, 60,
                                      "the status bar without progress")
            seen["title after"] = _image_window(widgets).name
            seen["messages"] = [w.name for w in widgets if w.role in ("label", "text") and "plug-in" in w.name.lower()]
            spool = work / "cache" / "pyops" / "spool"
            seen["spool"] = [p.relative_to(spool).as_posix() for p in spool.rglob("*") if p.is_file()]
    finally:
        server.stop()
    return seen


@pytest.fixture(scope="module")
def cancelled(tmp_path_factory):
    return _session(tmp_path_factory.mktemp("gimp-gui"))


def test_the_menu_opens_the_deconvolve_dialog_with_the_psf_library(cancelled):
    names = cancelled["dialog"]
    assert "OK" in names and "Cancel" in names, names
    assert any("PSF library:" in n and "shake-0113" in n and "lens-f2" in n for n in names), names


def test_cancel_on_the_progress_cancels_the_job_and_leaves_the_image_and_the_spool(cancelled):
    running = [j for j in cancelled["jobs running"] if j["state"] == "running"]
    assert len(running) == 1 and running[0]["operator"] == "deconvolve", cancelled["jobs running"]
    after = {j["id"]: j["state"] for j in cancelled["jobs after"]}
    assert after == {running[0]["id"]: "cancelled"}, cancelled["jobs after"]
    assert cancelled["spool"] == []
    # the window title counts the layers and marks unsaved changes: the same as before the run
    assert "1 layer" in cancelled["title before"] and cancelled["title after"] == cancelled["title before"]
    assert cancelled["messages"] == []
