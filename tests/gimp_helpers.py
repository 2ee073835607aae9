"""Drive a real GIMP 3 (the trixie chroot's 3.0.x) in batch mode with the pyops plug-in installed as install.sh
installs it, talking to a pyops server started on the host (127.0.0.1 is shared with the chroot; DESIGN.md §5)."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.chroot import TRIXIE, in_chroot, require_trixie
from tests.conftest import ROOT, missing

GIMP = "/usr/bin/gimp-console-3.0"


def require_gimp() -> None:
    require_trixie("GIMP 3")
    if not (TRIXIE / GIMP.lstrip("/")).exists():
        missing(f"no {GIMP} in the trixie chroot at {TRIXIE}")


def install_plugin(gimpdir: Path, pyops_exe: str) -> Path:
    """What install.sh does for GIMP: the plug-in (executable, pointed at pyops) and its schema.json."""
    target = gimpdir / "plug-ins" / "pyops-gimp"
    target.mkdir(parents=True, exist_ok=True)
    plugin = target / "pyops-gimp.py"
    plugin.write_text((ROOT / "plugin" / "pyops-gimp" / "pyops-gimp.py").read_text().replace("@PYOPS@", pyops_exe))
    plugin.chmod(0o755)
    schema = subprocess.run([sys.executable, "-m", "pyops", "client", "schema", "--format", "json"],
                            capture_output=True, text=True, check=True)
    (target / "schema.json").write_text(schema.stdout)
    return plugin


@dataclass
class GimpRun:
    returncode: int
    log: str


def run_gimp(work: Path, batch: str, env: dict, timeout: float = 600) -> GimpRun:
    """Run `batch` (Python for GIMP's python-fu-eval) in gimp-console with a private GIMP folder."""
    require_gimp()
    script = work / "batch.py"
    script.write_text(batch)
    keep = {k: env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME") if k in env}
    keep.update(PATH="/usr/bin:/bin", LANG="C.UTF-8", GIMP3_DIRECTORY=env["GIMP3_DIRECTORY"],
                XDG_CONFIG_HOME=str(work / "config"), NO_AT_BRIDGE="1")
    args = [GIMP, "-i", "-n", "-d", "-f", "--batch-interpreter=python-fu-eval",
            "-b", f"exec(open({str(script)!r}).read())", "--quit"]
    binds = [work, ROOT, Path(sys.base_prefix), Path(sys.prefix)]
    proc = subprocess.run(in_chroot(args, keep, binds), capture_output=True, text=True, timeout=timeout)
    return GimpRun(proc.returncode, proc.stdout + proc.stderr)
