"""The `pyops` command as a user runs it: listing, batches with bad files among good ones, the demo."""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

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
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert pyops_cli("demo", "-o", tmp_path).returncode == 0  # a second demo keeps every file of the first
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in first} == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in first) == [
        "pyops-demo-underexposed_01.dng", "pyops-demo-underexposed_01_pyops-twostop.tif", "pyops-demo_01.png"]


def _command_paths(parser, prefix=()):
    """Every sub-command of the parser, as argument lists: ("run", "bin"), ("psf", "save"), …"""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix
    for action in subs:
        for name, sub in action.choices.items():
            yield from _command_paths(sub, (*prefix, name))


def test_help_of_every_command_and_operator_exits_0(capsys):
    from pyops.cli import _build, main

    paths = list(_command_paths(_build(operators())))
    assert {("run", op.name) for op in operators()} | {("batch", "boost"), ("client", "run", "twostop"),
                                                        ("demo",), ("psf", "show")} <= set(paths)
    for path in [()] + paths:
        with pytest.raises(SystemExit) as stop:
            main([*path, "--help"])
        assert stop.value.code == 0, path
        assert "usage: pyops" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "boost", "--help"])
    assert "18 % grey" in capsys.readouterr().out  # the % printed as written


def _tiff(path: Path, size=(48, 64)) -> Path:
    rng = np.random.default_rng(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, (rng.random((*size, 3)) * 0.5 + 0.2).astype(np.float32), photometric="rgb")
    return path


def test_bool_parameters_are_flags(tmp_path, capsys):
    from pyops import provenance
    from pyops.cli import main

    src = _tiff(tmp_path / "in.tif")
    for flags, expected in ((["--luminance-only"], True), (["--no-luminance-only"], False),
                            (["--luminance-only", "true"], True), (["--luminance-only=false"], False),
                            ([], False)):
        out = tmp_path / f"out-{len(flags)}-{expected}"
        assert main(["run", "deconvolve", *flags, str(src), "--iterations", "2", "-o", str(out), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert provenance.read(Path(result["output"]))["parameters"]["luminance_only"] is expected, flags
    assert "--luminance-only, --no-luminance-only" in pyops_cli("run", "deconvolve", "--help").stdout


@pytest.mark.parametrize("command", ["run", "batch"])
def test_an_output_dir_that_cannot_be_one_is_one_line_exit_2(command, tmp_path):
    src = _tiff(tmp_path / "in" / "a.tif")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for out, message in ((a_file, "not a folder"), (tmp_path / "no" / "such" / "dir", "does not exist")):
        res = pyops_cli(command, "bin", src, "-o", out)
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
    assert not (tmp_path / "no").exists()  # no tree of folders grown from a typo
    res = pyops_cli("run", "bin", src, "-o", tmp_path / "new")  # one new folder below an existing one is fine
    assert res.returncode == 0 and [p.name for p in (tmp_path / "new").iterdir()] == ["a_pyops-bin.tif"]


@pytest.mark.parametrize("args,message", [
    (["twostop", "--format", "dng"], "format dng is only for raw-domain results"),
    (["deconvolve", "--psf", "nonsense"], "nonsense"),
])
def test_a_parameter_found_bad_while_running_exits_2(args, message, tmp_path):
    res = pyops_cli("run", *args, CANON_CHECKER, "-o", tmp_path)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_files_of_killed_runs_are_removed(tmp_path):
    from pyops.io.files import STALE_AFTER, temp_prefix

    src = _tiff(tmp_path / "a.tif")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - STALE_AFTER - 10
    stale = tmp_path / f"{temp_prefix(dead.pid)}k3x9.tif"  # what a kill -9 during "writing" leaves
    kept = {"live": tmp_path / f"{temp_prefix()}abcd.tif", "young": tmp_path / f"{temp_prefix(dead.pid)}young.tif",
            "link": tmp_path / f"{temp_prefix(dead.pid)}link.tif", "other": tmp_path / ".pyops-notapid.tif",
            "other host": tmp_path / f".pyops-{dead.pid}@0badc0de-k3x9.tif"}
    for path in (stale, kept["live"], kept["young"], kept["other"], kept["other host"]):
        path.write_bytes(b"partial")
    kept["link"].symlink_to(src)
    for path in (stale, kept["live"], kept["other"], kept["other host"]):
        os.utime(path, (old, old))
    os.utime(kept["link"], (old, old), follow_symlinks=False)
    res = pyops_cli("run", "bin", src)
    assert res.returncode == 0, res.stderr
    assert not stale.exists()
    assert all(p.is_symlink() or p.exists() for p in kept.values())
    assert (tmp_path / "a_pyops-bin.tif").exists()


def _in_a_terminal(args: list[str], until: str | None = None, timeout: float = 300) -> tuple[int, str]:
    """Run `python -m pyops ARGS` on a pseudo-terminal; with `until`, send SIGINT once that text appears.
    Returns (exit code, everything it printed)."""
    import fcntl
    import pty
    import struct
    import termios

    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns, as a terminal has
    # as a terminal's foreground job: Ctrl-C not ignored, even when this test runs in a background job (a shell
    # without job control starts those with SIGINT ignored, and children inherit it)
    proc = subprocess.Popen([sys.executable, "-m", "pyops", *args], stdin=term_fd, stdout=term_fd, stderr=term_fd,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(term_fd)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 1)
            if ready:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:  # the terminal closed: the process has ended
                    break
                if not chunk:
                    break
                seen += chunk
                if until and until.encode() in seen:
                    proc.send_signal(signal.SIGINT)
                    until = None
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=60), seen.decode(errors="replace")
    finally:
        os.close(main_fd)
        if proc.poll() is None:
            proc.kill()


def test_one_file_shows_its_progress_on_a_terminal_only(tmp_path):
    src = _tiff(tmp_path / "a.tif", size=(256, 256))
    args = ["run", "deconvolve", str(src), "--iterations", "30", "--stop", "none", "-o"]
    code, text = _in_a_terminal([*args, str(tmp_path / "tty")])
    assert code == 0, text
    assert re.search(r"a\.tif: iteration \d+, residual [\d.e+-]+ × noise: +\d+%\|", text), text  # the operator's progress
    assert "100%|" in text
    piped = pyops_cli(*args, tmp_path / "pipe")
    assert piped.returncode == 0 and piped.stderr == ""  # not a terminal: no bar


def test_ctrl_c_in_run_is_one_line_exit_130(tmp_path):
    src = _tiff(tmp_path / "a.tif", size=(512, 512))
    code, text = _in_a_terminal(["run", "deconvolve", str(src), "--iterations", "1000", "--stop", "none",
                                 "-o", str(tmp_path / "out")], until=", residual ")
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "pyops: interrupted during a.tif; 0 of 1 results written" in text
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
