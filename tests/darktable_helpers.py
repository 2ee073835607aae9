"""Drive a real darktable under Xvfb: a fresh config folder with the pyops script installed as install.sh installs
it, an in-memory library, and a Lua test driver that writes what it saw to a status file (DESIGN.md §4)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.server_helpers import server_env


def require_darktable() -> str:
    exe = shutil.which("darktable")
    if exe is None or shutil.which("Xvfb") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("darktable and Xvfb must be installed (.ci/run installs them)")
        pytest.skip("darktable or Xvfb not installed")
    return exe


def install_script(configdir: Path, pyops_exe: str) -> None:
    """What install.sh does for darktable: the script in lua/pyops/ and one require line in luarc."""
    target = configdir / "lua" / "pyops"
    target.mkdir(parents=True, exist_ok=True)
    (target / "pyops.lua").write_text((ROOT / "lua" / "pyops.lua").read_text().replace("@PYOPS@", pyops_exe))


@dataclass
class DarktableRun:
    returncode: int
    status: dict[str, str]
    log: str
    elapsed: float


def run_darktable(work: Path, driver_lua: str, timeout: float = 300) -> DarktableRun:
    """Start darktable with the installed script and `driver_lua` run from luarc, wait for it to quit."""
    exe = require_darktable()
    env = server_env(work)  # private HOME, runtime folder (its own pyops server) and cache
    env["NO_AT_BRIDGE"] = "1"
    cfg, cache, tmp = work / "cfg", work / "dtcache", work / "dttmp"
    for d in (cfg / "lua", cache, tmp):
        d.mkdir(parents=True, exist_ok=True)
    install_script(cfg, str(Path(sys.executable).with_name("pyops")))
    status = work / "status.txt"
    status.unlink(missing_ok=True)
    driver = work / "driver.lua"
    driver.write_text(driver_lua)
    (cfg / "luarc").write_text('require "pyops/pyops"\n'
                               f'local ok, err = pcall(dofile, [[{driver}]])\n'
                               f'if not ok then local f = io.open([[{status}]], "a") f:write("lua_error\\t", '
                               'tostring(err):gsub("\\n", " "), "\\n") f:close() end\n'
                               'require("darktable").gui.action("global/quit", 0, "", "", 1.0)\n')
    r_fd, w_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(w_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w_fd)
    display = os.read(r_fd, 16).decode().strip()
    os.close(r_fd)
    env["DISPLAY"] = f":{display}"
    started = time.time()
    log = work / "darktable.log"
    try:
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                [exe, "--configdir", str(cfg), "--cachedir", str(cache), "--tmpdir", str(tmp), "--library", ":memory:",
                 "--disable-opencl", "--conf", "plugins/imageio/format/tiff/compress=0",
                 "--conf", "ask_before_delete=false", "--conf", "ask_before_remove=false",
                 "--conf", "show_splash_screen=false", "-d", "lua"],
                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    finally:
        xvfb.kill()
        xvfb.wait()
        subprocess.run([sys.executable, "-m", "pyops", "client", "stop"], env=env, capture_output=True, timeout=60)
    values: dict[str, str] = {}
    if status.exists():
        for line in status.read_text().splitlines():
            key, _, value = line.partition("\t")
            values[key] = value
    return DarktableRun(rc, values, log.read_text(errors="replace"), time.time() - started)
