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

from tests.chroot import in_chroot, require_trixie
from tests.conftest import ROOT, missing
from tests.server_helpers import server_env
from tests.xvfb import virtual_screen


def require_darktable(version: str = "4.2") -> str:
    """The darktable to drive: Debian 12's 4.2.1 on the host, or 5.0 in the trixie chroot."""
    if shutil.which("Xvfb") is None:
        missing("Xvfb is not installed")
    if version == "4.2":
        exe = shutil.which("darktable")
        if exe is None:
            missing("darktable is not installed")
        return exe
    require_trixie("darktable 5")
    return "/usr/bin/darktable"


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
    crashes: int = 0  # sessions darktable itself died in (signal) and that were run again


def darktable_args(exe: str, version: str, cfg: Path, cache: Path, tmp: Path, work: Path, env: dict,
                   conf: tuple[str, ...] = (), library: str = ":memory:", extra: tuple[str, ...] = ()) -> list[str]:
    """The command line that starts darktable `version` on env's DISPLAY: its folders under `work`, no OpenCL,
    no splash, a 1280×800 window; in the trixie chroot for 5.0 (with `work` bound at the same path)."""
    args = [exe, "--configdir", str(cfg), "--cachedir", str(cache), "--tmpdir", str(tmp),
            "--library", library, "--disable-opencl", "--conf", "plugins/imageio/format/tiff/compress=0",
            "--conf", "ask_before_delete=false", "--conf", "ask_before_remove=false",
            "--conf", "show_splash_screen=false", "--conf", "ui_last/window_w=1280",
            "--conf", "ui_last/window_h=800", *[a for c in conf for a in ("--conf", c)], "-d", "lua", *extra]
    if version == "4.2":
        return args
    keep = {k: env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME", "DISPLAY",
                                "NO_AT_BRIDGE", "DBUS_SESSION_BUS_ADDRESS") if k in env}
    keep.update(PATH="/usr/bin:/bin", LANG="C.UTF-8")
    return in_chroot(args, keep, [work, ROOT, Path(sys.base_prefix), Path("/tmp/.X11-unix")])


def _run_once(exe: str, version: str, cfg: Path, cache: Path, tmp: Path, work: Path, env: dict,
              conf: tuple[str, ...], log: Path, timeout: float) -> int:
    """One darktable run on its own virtual screen; returns darktable's exit code."""
    with virtual_screen() as display:
        env = {**env, "DISPLAY": display}
        try:
            with open(log, "w") as fh:
                args = darktable_args(exe, version, cfg, cache, tmp, work, env, conf)
                proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    return proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    return proc.wait()
        finally:
            subprocess.run([sys.executable, "-m", "pyops", "client", "stop"], env=env, capture_output=True, timeout=60)


def _restore(folder: Path, files: set[Path]) -> None:
    """Remove what a run added to `folder` (results, sidecars, hidden export folders), keep `files`."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path not in files:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def run_darktable(work: Path, driver_lua: str, timeout: float = 600, conf: tuple[str, ...] = (),
                  version: str = "4.2", restore: tuple[Path, ...] = ()) -> DarktableRun:
    """Start darktable with the installed script and `driver_lua` run from luarc, wait for it to quit.

    darktable 4.2.1 and 5.0.1 themselves sometimes die from a signal while a script drives them right after
    start-up (about one session in ten here: heap corruption inside darktable, in steps that pass on every
    other run). Such a run is kept as darktable-crash-N.log and, when the folders the driver changes are given
    (`restore`: its photos, the PSF library), they are put back as they were and the session runs once more;
    `crashes` counts them."""
    exe = require_darktable(version)
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
    started = time.time()
    log = work / "darktable.log"
    originals = {folder: set(folder.rglob("*")) for folder in restore}
    crashes = 0
    for _ in range(3):
        rc = _run_once(exe, version, cfg, cache, tmp, work, env, conf, log, timeout)
        if rc < 0 and restore and crashes == 0:  # killed by a signal inside darktable: once more, from the start
            crashes += 1
            shutil.copy(log, work / f"darktable-crash-{crashes}.log")
            status.unlink(missing_ok=True)
            for folder, files in originals.items():
                _restore(folder, files)
            continue
        # another X server on the machine can take our display away between start and connect: start afresh
        if "cannot open display" not in log.read_text(errors="replace") or status.exists():
            break
    values: dict[str, str] = {}
    if status.exists():
        for line in status.read_text().splitlines():
            key, _, value = line.partition("\t")
            values[key] = value
    return DarktableRun(rc, values, log.read_text(errors="replace"), time.time() - started, crashes)
