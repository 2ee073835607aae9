"""darktable (darktable-cli, the real program) opens pyops' binned DNG as a raw and develops it normally."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
from PIL import Image

from pyops.process import process_file
from tests.conftest import CANON_CHECKER, missing, need


def _darktable_cli() -> str:
    exe = shutil.which("darktable-cli")
    if exe is None:
        missing("darktable-cli is not installed")
    return exe


def _export(exe: str, src, dst, tmp_path):
    cfg = tmp_path / f"cfg-{dst.stem}"
    res = subprocess.run([exe, str(src), str(dst), "--core", "--configdir", str(cfg), "--library", ":memory:"],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, HOME=str(tmp_path)))
    assert res.returncode == 0 and dst.exists(), res.stdout + res.stderr
    return np.asarray(Image.open(dst).convert("RGB"), dtype=np.float64)


def test_darktable_develops_the_binned_dng_two_stops_brighter_at_half_size(tmp_path):
    exe = _darktable_cli()
    src = need(CANON_CHECKER)
    dng = process_file("bin", {"domain": "bayer"}, src, tmp_path).output
    orig = _export(exe, src, tmp_path / "orig.png", tmp_path)
    binned = _export(exe, dng, tmp_path / "binned.png", tmp_path)
    assert binned.shape[:2] == (orig.shape[0] // 2, orig.shape[1] // 2)
    # same development, +2 EV: clearly brighter, and the colour balance of the grey patches stays neutral
    assert binned.mean() > orig.mean() * 1.25
    grey = binned[binned.shape[0] * 3 // 4 - 20: binned.shape[0] * 3 // 4 + 20, binned.shape[1] // 2 - 20: binned.shape[1] // 2 + 20]
    r, g, b = grey.reshape(-1, 3).mean(axis=0)
    assert abs(r - g) < 12 and abs(b - g) < 12
