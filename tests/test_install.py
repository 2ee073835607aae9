"""install.sh as a new user runs it, in a throw-away HOME: install, run, re-run, uninstall."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pyops import __version__
from tests.conftest import ROOT


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYOPS_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
               PATH="/usr/local/bin:/usr/bin:/bin:" + os.path.dirname(os.path.realpath(_python())), **extra)
    return env


def _python() -> str:
    """A system-level python3 (not this test's virtualenv) that install.sh will use, as a user's would."""
    base = subprocess.run(["python3", "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"})
    return str(Path(base.stdout.strip()) / "bin" / "python3")


def _install(home: Path, *args: str, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "install.sh"), *args], capture_output=True, text=True, timeout=1200,
                          env=_env(home, PYTHON=_python(), **extra))


def test_install_run_reinstall_uninstall(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    dtconf = home / "dt config"
    dtconf.mkdir()
    (dtconf / "luarc").write_text('require "tools/script_manager"\n')
    gimp = home / "gimp 3"
    (gimp / "plug-ins").mkdir(parents=True)
    first = _install(home, DARKTABLE_CONFIGDIR=str(dtconf), GIMP3_DIRECTORY=str(gimp))
    assert first.returncode == 0, first.stderr
    link = home / ".local" / "bin" / "pyops"
    venv = home / ".local" / "share" / "pyops"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin" / "pyops"
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, env=_env(home))
    assert version.returncode == 0 and version.stdout.strip() == f"pyops {__version__}"
    ops = subprocess.run([str(link), "ops"], capture_output=True, text=True, env=_env(home))
    assert ops.returncode == 0 and "twostop" in ops.stdout

    script = (dtconf / "lua" / "pyops" / "pyops.lua").read_text()
    assert f'local DEFAULT_PYOPS = "{venv / "bin" / "pyops"}"' in script and "@PYOPS@" not in script
    plugin = gimp / "plug-ins" / "pyops-gimp" / "pyops-gimp.py"
    assert os.access(plugin, os.X_OK) and f'PYOPS = "{venv / "bin" / "pyops"}"' in plugin.read_text()
    schema = json.loads((plugin.parent / "schema.json").read_text())
    assert {"bin", "boost", "deconvolve", "psf_estimate"} <= {op["name"] for op in schema}

    again = _install(home, DARKTABLE_CONFIGDIR=str(dtconf))  # idempotent
    assert again.returncode == 0, again.stderr
    assert subprocess.run([str(link), "--version"], env=_env(home), capture_output=True).returncode == 0
    assert (dtconf / "luarc").read_text() == 'require "tools/script_manager"\nrequire "pyops/pyops"\n'

    gone = _install(home, "--uninstall", DARKTABLE_CONFIGDIR=str(dtconf), GIMP3_DIRECTORY=str(gimp))
    assert gone.returncode == 0 and not plugin.parent.exists()
    assert not link.exists() and not link.is_symlink() and not venv.exists()
    assert not (dtconf / "lua" / "pyops").exists()
    assert (dtconf / "luarc").read_text() == 'require "tools/script_manager"\n'  # the user's own lines stay


def test_prefix_is_honoured_and_a_foreign_folder_is_left_alone(tmp_path):
    home = tmp_path / "home"
    foreign = tmp_path / "mine"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("keep")
    res = _install(home, PYOPS_PREFIX=str(foreign))
    assert res.returncode == 1 and "was not made by install.sh" in res.stderr
    assert _install(home, "--uninstall", PYOPS_PREFIX=str(foreign)).returncode == 0
    assert (foreign / "precious.txt").read_text() == "keep"


def test_unknown_option_is_refused(tmp_path):
    res = _install(tmp_path, "--frobnicate")
    assert res.returncode == 2 and "unknown option --frobnicate" in res.stderr
