"""darktable driven by mouse clicks and key presses, as a photographer drives it — 4.2.1 from Debian 12 and 5.0
in the trixie chroot, on a virtual screen (tests/gui_session.py: widgets found through the accessibility bus,
events sent through XTEST; no fixed positions).

One darktable session per version, with the pyops script installed as install.sh installs it and two raws in
the library: click one thumbnail, ctrl+click the other, open "selected image[s]" ("actions on selection" in 5.0),
click "pyops: boost"; select one thumbnail and press the key bound to "pyops: run twostop"; double-click a
thumbnail into the darkroom, open the pyops module there and click "run on this image". darktable is then quit
with ctrl+q and its library database read: every result must be there, grouped with its original and tagged.
A key bound to a test-only Lua action reports which view and image darktable shows after the darkroom run.
A last start with no pyops at the configured path checks the first-run message in the module."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import pytest

from tests.conftest import CANON_CHECKER, MOTION_CRW, need
from tests.darktable_helpers import darktable_args, install_script, require_darktable
from tests.gui_session import Desktop, Widget, desktop
from tests.server_helpers import server_env

# test-only Lua in luarc around the installed script: where the results may go, boost as the module's operator,
# and an action (bound to ctrl+F10) that writes what darktable shows
LUARC = r'''
local dt = require "darktable"
local function put(k, v) local f = io.open([[@STATUS@]], "a") f:write(k, "\t", tostring(v), "\n") f:close() end
dt.preferences.write("pyops", "roots", "string", [[@PHOTOS@]])
dt.preferences.write("pyops", "operator", "string", "boost")
require "pyops/pyops"
dt.register_event("pyops_test", "shortcut", function()
  local view = dt.gui.current_view()
  put("view", view.id)
  if view.id == "darkroom" then put("displayed", dt.gui.views.darkroom.display_image().filename) end
end, "pyops test: report")
put("loaded", "yes")
'''
SHORTCUTS = "F9;ctrl=lua/pyops: run twostop\nF10;ctrl=lua/pyops test: report\n"
SCREENSHOTS = os.environ.get("PYOPS_SCREENSHOTS")  # docs/screenshots.sh sets it: the README's pictures


def _thumbnails(widgets: list[Widget], kind: str = "CRW") -> list[Widget]:
    """The lighttable's thumbnails of `kind` files, in the order shown (darktable draws the file extension in
    each thumbnail's corner); a thumbnail is a square panel holding that label."""
    squares = [w for w in widgets if w.role == "panel" and w.children >= 10 and abs(w.w - w.h) <= 2 and w.w > 60]
    return [s for s in squares if any(w.name == kind and w.inside(s) for w in widgets)]


def _named(widgets: list[Widget], *names: str, role: str | None = None) -> Widget | None:
    return next((w for w in widgets if w.name in names and (role is None or w.role == role)), None)


def _wait_file(folder: Path, before: set[Path], n: int, timeout: float = 240) -> list[Path]:
    """Wait until `n` new result TIFFs appear in `folder` (published by rename: a name means a complete file)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = sorted(set(folder.glob("*_pyops-*.tif")) - before)
        if len(new) >= n:
            return new
        time.sleep(0.5)
    raise AssertionError(f"{n} new results in {folder} within {timeout} s; have {sorted(folder.iterdir())}")


def _save(screen: Desktop, work: Path, name: str) -> None:
    """Keep a picture of darktable's window with the test's files (and in $PYOPS_SCREENSHOTS, for the README)."""
    frame = _named(screen.widgets("darktable"), "darktable", role="frame")
    picture = screen.screenshot((frame.x, frame.y, frame.w, frame.h) if frame else None)
    iio.imwrite(work / f"{name}.png", picture)
    if SCREENSHOTS:
        iio.imwrite(Path(SCREENSHOTS) / f"{name}.png", picture)


def _library(work: Path) -> dict[str, dict]:
    """The library darktable wrote: file name → its id, group and tags."""
    lib = sqlite3.connect(work / "library.db")
    data = sqlite3.connect(work / "cfg" / "data.db")
    tags = dict(data.execute("SELECT id, name FROM tags"))
    out = {}
    for img, name, group in lib.execute("SELECT id, filename, group_id FROM images"):
        names = [tags.get(t) for (t,) in lib.execute("SELECT tagid FROM tagged_images WHERE imgid = ?", (img,))]
        out[name] = {"id": img, "group": group, "tags": names}
    return out


@contextlib.contextmanager
def _darktable(screen: Desktop, version: str, work: Path, pyops_exe: str) -> Iterator[list[Widget]]:
    """darktable on `screen` with its own configuration, library and copy of the two raws under `work`, opened on
    the photos folder; yields the widgets once the raws and the pyops module are shown, quits with ctrl+q after.
    Each path gets a fresh library: in darktable 5.0 a folder already in the library comes back empty when
    opened again from the command line here, so a second start could not show the raws to click."""
    exe = require_darktable(version)
    photos, cfg, cache, tmp = work / "photos", work / "cfg", work / "dtcache", work / "dttmp"
    for d in (photos, cfg / "lua", cache, tmp):
        d.mkdir(parents=True, exist_ok=True)
    for raw in (CANON_CHECKER, MOTION_CRW):
        shutil.copy(need(raw), photos / raw.name)
    install_script(cfg, pyops_exe)
    (cfg / "luarc").write_text(LUARC.replace("@STATUS@", str(work / "status.txt")).replace("@PHOTOS@", str(photos)))
    (cfg / "shortcutsrc").write_text(SHORTCUTS)
    # the chroot sees work's parent: the session bus and the server's runtime folder are there
    args = darktable_args(exe, version, cfg, cache, tmp, work.parent, screen.env, library=str(work / "library.db"),
                          extra=(str(photos),))
    with open(work / "darktable.log", "w") as log:
        proc = subprocess.Popen(args, env=screen.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield screen.wait_for("darktable", lambda ws: len(_thumbnails(ws)) == 2 and _named(ws, "pyops") and ws,
                                  180, "the two raws and the pyops module")
        finally:
            iio.imwrite(work / "last-screen.png", screen.screenshot())  # what the screen showed at the end
            screen.key("Control_L", "q")
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # the server darktable started serves this path's photos folder only: the next path starts its own
            subprocess.run([sys.executable, "-m", "pyops", "client", "stop"], env=screen.env, capture_output=True,
                           check=False, timeout=60)


def _reported(work: Path) -> dict[str, str]:
    """What the test's Lua wrote (key → value)."""
    status = work / "status.txt"
    return dict(line.split("\t", 1) for line in status.read_text().splitlines()) if status.exists() else {}


def _session(version: str, work: Path, pyops_exe: str) -> dict[str, tuple[dict, dict]]:
    """Click through the three paths, each in its own darktable; path → (what was seen, its library)."""
    require_darktable(version)
    env = server_env(work)
    app = "darktable"
    out = {}
    with desktop(env, work / "run") as screen:
        # 1. click, ctrl+click, then the operator's button in the selected images module
        seen, here = {}, work / "action"
        with _darktable(screen, version, here, pyops_exe) as widgets:
            seen["loaded"] = _reported(here).get("loaded")
            checker, shaken = _thumbnails(widgets)
            screen.click(checker)
            screen.click(shaken, holding=("Control_L",))
            seen["selection"] = screen.wait_for(app, lambda ws: _named(ws, "2 images selected of 2"), 30,
                                                "2 images selected").name
            screen.click(_named(widgets, "selected image[s]", "actions on selection", role="label"))
            button = screen.wait_for(app, lambda ws: _named(ws, "pyops: boost", role="push button"), 30,
                                     "the pyops: boost button")
            _save(screen, here, f"darktable-{version}-action")
            screen.click(button)
            seen["results"] = [p.name for p in _wait_file(here / "photos", set(), 2)]
            time.sleep(3)  # the import follows the file
        out["action"] = seen, _library(here)

        # 2. one thumbnail selected, a real key press on the shortcut bound to "pyops: run twostop"
        seen, here = {}, work / "shortcut"
        with _darktable(screen, version, here, pyops_exe) as widgets:
            screen.click(_thumbnails(widgets)[0])
            screen.wait_for(app, lambda ws: _named(ws, "1 image (#1) selected of 2"), 60, "1 image selected")
            screen.key("Control_L", "F9")
            seen["results"] = [p.name for p in _wait_file(here / "photos", set(), 1)]
            time.sleep(3)
        out["shortcut"] = seen, _library(here)

        # 3. the darkroom: double-click the shaken raw, open the pyops module, run on this image
        seen, here = {}, work / "darkroom"
        with _darktable(screen, version, here, pyops_exe) as widgets:
            screen.click(_thumbnails(widgets)[1], double=True)
            header = screen.wait_for(app, lambda ws: _named(ws, "snapshots") and _named(ws, "pyops", role="label"),
                                     120, "the darkroom (its snapshots module) with the pyops module")
            screen.click(header)
            run = screen.wait_for(app, lambda ws: _named(ws, "run on this image", role="push button"), 30,
                                  "the run on this image button")
            _save(screen, here, f"darktable-{version}-darkroom")
            screen.click(run)
            seen["results"] = [p.name for p in _wait_file(here / "photos", set(), 1)]
            time.sleep(3)
            screen.key("Control_L", "F10")
            deadline = time.time() + 30
            while "displayed" not in _reported(here) and time.time() < deadline:
                time.sleep(0.5)
            seen.update(_reported(here))
        out["darkroom"] = seen, _library(here)

        # 4. first run with no pyops where the script looks for it: the module says what to do
        seen, here = {}, work / "first-run"
        with _darktable(screen, version, here, str(here / "no-pyops-here")) as widgets:
            screen.click(_named(widgets, "pyops", role="label"))
            seen["message"] = screen.wait_for(app, lambda ws: next((w.name for w in ws if "install.sh" in w.name),
                                                                   None), 30, "the first-run message")
            _save(screen, here, f"darktable-{version}-first-run")
        seen["log"] = (here / "darktable.log").read_text(errors="replace")
        out["first-run"] = seen, {}
    return out


@pytest.fixture(scope="module", params=["4.2", "5.0"])
def clicked(request, tmp_path_factory):
    version = request.param
    work = tmp_path_factory.mktemp(f"darktable-gui-{version}")
    return _session(version, work, str(Path(sys.executable).with_name("pyops")))


def test_clicking_thumbnails_and_the_pyops_action_imports_grouped_tagged_results(clicked):
    seen, library = clicked["action"]
    assert seen["loaded"] == "yes" and seen["selection"] == "2 images selected of 2"
    assert sorted(seen["results"]) == sorted(f"{r.stem}_pyops-boost.tif" for r in (CANON_CHECKER, MOTION_CRW))
    for raw in (CANON_CHECKER, MOTION_CRW):
        result = library[f"{raw.stem}_pyops-boost.tif"]
        assert result["group"] == library[raw.name]["group"], (raw.name, library)
        assert "pyops|boost" in result["tags"]


def test_a_key_press_on_the_shortcut_runs_the_operator_on_the_selected_image(clicked):
    seen, library = clicked["shortcut"]
    assert seen["results"] == [f"{CANON_CHECKER.stem}_pyops-twostop.tif"]
    result = library[seen["results"][0]]
    assert result["group"] == library[CANON_CHECKER.name]["group"] and "pyops|twostop" in result["tags"]
    assert len(library) == 3  # the two raws and the one result: only the selected image ran


def test_the_darkroom_module_runs_on_the_edited_image_and_stays_on_it(clicked):
    seen, library = clicked["darkroom"]
    assert seen["results"] == [f"{MOTION_CRW.stem}_pyops-boost.tif"]
    result = library[seen["results"][0]]
    assert result["group"] == library[MOTION_CRW.name]["group"] and "pyops|boost" in result["tags"]
    assert seen.get("view") == "darkroom" and seen.get("displayed") == MOTION_CRW.name, seen


def test_without_pyops_the_module_says_in_one_line_what_to_do_and_no_lua_error(clicked):
    seen, _ = clicked["first-run"]
    assert "cannot run" in seen["message"] and "./install.sh" in seen["message"], seen["message"]
    log = seen["log"]
    assert "install it with ./install.sh in the pyops checkout, or set its path in preferences" in log
    assert "stack traceback" not in log and "LUA ERROR" not in log.upper()
