"""Shared test helpers. Data come from ../shared/data beside the checkout; when it is missing a test skips
locally but FAILS in CI (CI=true), so a missing host or file can never pass as a skip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RAW = DATA / "raw"
CANON_CHECKER = RAW / "canon_powershot_s40__CRW_0101_colorchecker.CRW"
CANON_G2_CHECKER = RAW / "canon_powershot_g2__CRW_0304_colorchecker.CRW"
MOTION_CRW = RAW / "canon_powershot_s40__CRW_0113_motionblur.CRW"
KODAK = RAW / "kodak_dc120__P003908.KDC"
KODAK_DC50 = RAW / "kodak_dc50__DC0009L.KDC"
LG_LINEAR_DNG = RAW / "lg_g4_h815__sample_1mp_linear.dng"
BAYER_RAWS = {  # file → CFA pattern of its visible top-left corner (../shared/data/README.md)
    CANON_CHECKER: "RGGB", CANON_G2_CHECKER: "RGGB", RAW / "canon_powershot_s40__CRW_0117_scene.CRW": "RGGB",
    RAW / "canon_powershot_s40__CRW_0113_motionblur.CRW": "RGGB", KODAK: "GRBG", KODAK_DC50: "GRBG",
}


def missing(what: str) -> None:
    """Something a test needs is not here: skip locally, but FAIL when CI=true (CI installs everything)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (.ci/run installs it)")
    pytest.skip(what)  # only outside CI: the line above fails there


def need(path: Path) -> Path:
    """`path`, or `missing` if it is not there."""
    if not path.exists():
        missing(f"test data missing: {path}")
    return path


def pyops_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI (`python -m pyops`) as a user would, capturing text output."""
    return subprocess.run([sys.executable, "-m", "pyops", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def block_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Plain numpy reference for k×k binning (float64), incomplete edge blocks dropped."""
    h, w = x.shape[0] // k * k, x.shape[1] // k * k
    y = x[:h, :w].astype(np.float64)
    return y.reshape(h // k, k, w // k, k, *x.shape[2:]).sum(axis=(1, 3))


def bayer_reference(m: np.ndarray, k: int) -> np.ndarray:
    """Plain numpy reference for same-colour binning: plane by plane k×k sums, re-interleaved."""
    ho, wo = m.shape[0] // (2 * k) * 2, m.shape[1] // (2 * k) * 2
    out = np.zeros((ho, wo), np.int64)
    for a in range(2):
        for b in range(2):
            out[a::2, b::2] = block_sum(m[a::2, b::2].astype(np.int64), k)[: ho // 2, : wo // 2]
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    """A real `pyops serve` allowed the module's `root` fixture, shared by the module's tests."""
    from tests.server_helpers import start_server

    srv = start_server(tmp_path_factory.mktemp("srv"), root)
    yield srv
    srv.stop()
