"""Make docs/gimp-dialog.png: GIMP 3 (trixie chroot) on a virtual screen with the pyops Deconvolve dialog open.

    .venv/bin/python docs/screenshot_gimp.py      (needs tests/trixie/build.sh's chroot and Xvfb)"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import ImageGrab

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.chroot import in_chroot  # noqa: E402
from tests.gimp_helpers import install_plugin  # noqa: E402
from tests.server_helpers import start_server  # noqa: E402
from tests.xvfb import virtual_screen  # noqa: E402

OPEN_DIALOG = """
from gi.repository import Gimp
image = Gimp.Image.new(640, 420, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(image, "photo", 640, 420, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
image.insert_layer(layer, None, 0)
Gimp.Display.new(image)
image.select_rectangle(Gimp.ChannelOps.REPLACE, 100, 80, 300, 200)
proc = Gimp.get_pdb().lookup_procedure("pyops-deconvolve")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
cfg.set_property("image", image)
cfg.set_core_object_array("drawables", [layer])
proc.run(cfg)
"""


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pyops-shot-"))
    server = start_server(work, work)
    try:
        install_plugin(work / "gimp3", str(Path(sys.executable).with_name("pyops")))
        for name, spec in (("shake-0113", "motion:length=15,angle=30"), ("lens-f2", "moffat:fwhm=3,beta=2.5")):
            subprocess.run([sys.executable, "-m", "pyops", "psf", "save", name, spec], env=server.env, check=True)
        script = work / "open.py"
        script.write_text(OPEN_DIALOG)
        with virtual_screen("1400x900x24") as display:
            env = {k: server.env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME")}
            env.update(PATH="/usr/bin:/bin", LANG="C.UTF-8", GIMP3_DIRECTORY=str(work / "gimp3"), DISPLAY=display,
                       XDG_CONFIG_HOME=str(work / "config"), NO_AT_BRIDGE="1")
            args = ["/usr/bin/gimp-3.0", "-n", "-d", "-f", "--batch-interpreter=python-fu-eval",
                    "-b", f"exec(open({str(script)!r}).read())"]
            proc = subprocess.Popen(in_chroot(args, env, [work, Path(sys.base_prefix), Path("/tmp/.X11-unix")]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 40)
            ImageGrab.grab(xdisplay=display).crop((0, 0, 1110, 610)).save(Path(__file__).with_name("gimp-dialog.png"), optimize=True)
            subprocess.run(["kill", "-9", f"-{proc.pid}"], check=False)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
