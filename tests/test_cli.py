"""The `pyops` command as a user runs it: listing, batches with bad files among good ones, the demo."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import rawpy

from pyops.registry import operators
from tests.conftest import CANON_CHECKER, KODAK, pyops_cli


def test_ops_lists_every_operator_and_parameter():
    out = pyops_cli("ops", "--format", "json")
    assert out.returncode == 0
    listed = {o["name"]: [p["name"] for p in o["params"]] for o in json.loads(out.stdout)}
    assert listed == {op.name: [d["name"] for d in op.describe()] for op in operators()}
    assert {"bin", "boost", "twostop"} <= set(listed)
    text = pyops_cli("ops").stdout
    assert "--factor" in text and "--highlights" in text


@pytest.fixture
def inputs(tmp_path):
    """Good raws and every kind of bad input, side by side in one folder."""
    d = tmp_path / "in"
    d.mkdir()
    good = [shutil.copy(CANON_CHECKER, d / "IMG_0101.CRW"), shutil.copy(KODAK, d / "P003908.KDC")]
    (d / "notes.NEF").write_text("this is text, not a raw file\n")
    (d / "empty.CR2").write_bytes(b"")
    (d / "cut.CRW").write_bytes(CANON_CHECKER.read_bytes()[:300_000])
    return d, good


def test_batch_goes_on_past_bad_files(inputs, tmp_path):
    d, good = inputs
    out_dir = tmp_path / "out"
    files = [d / "notes.NEF", good[0], d / "missing.CRW", d / "empty.CR2", d / "cut.CRW", good[1]]
    res = pyops_cli("run", "bin", "--domain", "bayer", *files, "-o", out_dir, "--json")
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("pyops:")]
    assert len(errors) == 4
    assert any("notes.NEF: not a raw file" in e for e in errors)
    assert any("missing.CRW: no such file" in e for e in errors)
    assert any("empty.CR2: empty file" in e for e in errors)
    assert any("cut.CRW: not a raw file" in e for e in errors)
    results = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["input"] for r in results] == [str(good[0]), str(good[1])]
    assert sorted(p.name for p in out_dir.iterdir()) == ["IMG_0101_pyops-bin.dng", "P003908_pyops-bin.tif"]
    with rawpy.imread(str(out_dir / "IMG_0101_pyops-bin.dng")) as raw:
        assert raw.raw_image_visible.shape == (1720 // 2, 2312 // 2)
    assert list(d.glob("*pyops*")) == []  # nothing written beside the inputs


@pytest.mark.parametrize("args,message", [
    (["run", "bin", "--factor", "0"], r"factor: input should be greater than or equal to 1 \(got '0'\)"),
    (["run", "bin", "--factor", "two"], r"factor: input should be a valid number"),
    (["run", "bin", "--mode", "median"], r"mode: input should be 'sum' or 'mean'"),
    (["run", "bin", "--colour", "red"], r"unrecognized arguments: --colour"),
    (["run", "boost", "--ev", "40"], r"ev: input should be less than or equal to 16"),
    (["run", "boost", "--method", "clahe", "--ev", "1"], r"ev is used by the gain and power methods only"),
    (["run", "bin", "--domain", "bayer", "--factor", "1.5"], r"the bayer domain needs an integer factor"),
    (["run", "sharpen"], r"invalid choice: 'sharpen'"),
])
def test_bad_parameters_give_one_line_and_exit_2(args, message, tmp_path):
    res = pyops_cli(*args, CANON_CHECKER, "-o", tmp_path)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and re.search(message, res.stderr), res.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_results_are_never_overwritten(tmp_path):
    for _ in range(2):
        assert pyops_cli("run", "boost", KODAK, "--ev", "1", "-o", tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kodak_dc120__P003908_pyops-boost.tif",
                                                          "kodak_dc120__P003908_pyops-boost_01.tif"]


def test_demo_shows_two_stops_and_twice_the_snr(tmp_path):
    res = pyops_cli("demo", "-o", tmp_path)
    assert res.returncode == 0, res.stderr
    ev = float(re.search(r"exposure gain: ([+-][\d.]+) EV", res.stdout).group(1))
    snr = float(re.search(r"SNR gain: ×([\d.]+)", res.stdout).group(1))
    assert ev == pytest.approx(2.0, abs=0.05)
    assert snr == pytest.approx(2.0, abs=0.15)
    png = tmp_path / "pyops-demo.png"
    assert png.stat().st_size > 50_000 and png.read_bytes()[:4] == b"\x89PNG"
    with rawpy.imread(str(tmp_path / "pyops-demo-underexposed.dng")) as raw:  # the sample is a real raw
        assert raw.raw_image_visible.shape == (800, 1200)
