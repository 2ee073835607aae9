"""File I/O: TIFF/PNG/JPEG in and out, ICC profiles, atomic never-overwriting writes, EXIF carried over."""
from __future__ import annotations

import os

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from pyops.color import rgb_to_xyz_d50, srgb_decode, srgb_encode
from pyops.io import icc
from pyops.io.files import InputError, output_name, write_atomic
from pyops.io.images import quantize, read_image, write_image
from pyops.io.metadata import read_exif
from pyops.process import process_file
from tests.conftest import CANON_CHECKER, missing, need


def _ramp(h=32, w=48):
    rng = np.random.default_rng(0)
    return rng.random((h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("predictor", [None, "horizontal"])
def test_reads_16_bit_deflate_tiff_with_linear_profile_as_darktable_writes_it(tmp_path, predictor):
    x = _ramp()
    prof = icc.linear_profile(rgb_to_xyz_d50("rec2020"), "linear Rec2020")
    data = np.round(x * 65535).astype(np.uint16)
    path = tmp_path / "dt.tif"
    tifffile.imwrite(path, data, photometric="rgb", compression="zlib", predictor=predictor,
                     extratags=[(34675, "B", len(prof), prof, True)])
    img = read_image(path)
    np.testing.assert_allclose(img.pixels, data / 65535.0, atol=1e-7)
    np.testing.assert_allclose(img.colorants, rgb_to_xyz_d50("rec2020"), atol=1e-4)


def test_reads_32_bit_float_tiff_with_float_predictor(tmp_path):
    x = _ramp() * 3  # values above 1 survive in float
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, x, photometric="rgb", compression="zlib", predictor="floatingpoint")
    np.testing.assert_array_equal(read_image(path).pixels, x)


def test_integer_files_without_a_profile_are_srgb_encoded(tmp_path):
    x = _ramp()
    enc8 = np.round(srgb_encode(x) * 255).astype(np.uint8)
    for name in ("a.tif", "a.png"):
        path = tmp_path / name
        tifffile.imwrite(path, enc8, photometric="rgb") if name.endswith("tif") else PILImage.fromarray(enc8).save(path)
        np.testing.assert_allclose(read_image(path).pixels, srgb_decode(enc8 / 255.0), atol=1e-6)


def test_parametric_srgb_profile_tone_curve_is_undone(tmp_path):
    from PIL import ImageCms

    prof = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # LittleCMS: 'para' curves
    x = _ramp()
    data = np.round(x * 65535).astype(np.uint16)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data, photometric="rgb", extratags=[(34675, "B", len(prof), prof, True)])
    np.testing.assert_allclose(read_image(path).pixels, srgb_decode(data / 65535.0), atol=2e-4)


@pytest.mark.parametrize("fmt,tol", [("tif16", 1 / 65535), ("tif32", 0), ("png", 2e-4), ("jpg", 0.01)])
def test_write_then_read_round_trip(tmp_path, fmt, tol):
    yy, xx = np.mgrid[0:32, 0:48] / 48.0
    x = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1).astype(np.float32)  # smooth, as JPEG expects
    path = tmp_path / f"o.{fmt[:3]}"
    write_image(path, x, fmt)
    back = read_image(path).pixels
    assert back.shape == x.shape
    assert np.abs(back - x).max() <= tol + 1e-7 if fmt != "jpg" else np.abs(back - x).mean() < tol
    if fmt.startswith("tif"):
        info = icc.inspect(tifffile.TiffFile(path).pages[0].tags[34675].value)
        assert info.linear


def test_atomic_write_never_overwrites_and_leaves_nothing_on_failure(tmp_path):
    src = tmp_path / "IMG_1.CRW"
    names = [write_atomic(tmp_path, lambda n: output_name(src, "bin", ".tif", n), ".tif",
                          lambda p, i=i: p.write_bytes(b"x" * (i + 1))).name for i in range(3)]
    assert names == ["IMG_1_pyops-bin.tif", "IMG_1_pyops-bin_01.tif", "IMG_1_pyops-bin_02.tif"]
    assert (tmp_path / "IMG_1_pyops-bin.tif").read_bytes() == b"x"  # the first is untouched

    def fail(p):
        p.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path, lambda n: output_name(src, "boost", ".tif", n), ".tif", fail)
    assert sorted(os.listdir(tmp_path)) == names  # no temp file, no final name


def test_a_full_disk_leaves_nothing_behind(tmp_path):
    """A real ENOSPC: `pyops run` writes a result larger than a 256 kB tmpfs (mounted in a private mount
    namespace, so nothing stays mounted): one line, exit 1, and nothing in the folder, no temp file either."""
    import shlex
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or os.geteuid() != 0:
        missing("a full-disk test needs root and unshare (a private tmpfs)")
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, (np.random.default_rng(0).random((400, 400, 3)) * 65535).astype(np.uint16),
                     photometric="rgb")
    full = tmp_path / "full"
    full.mkdir()
    run = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "pyops", "run", "boost", str(src), "-o", str(full)))
    script = (f"mount -t tmpfs -o size=256k tmpfs {shlex.quote(str(full))} && {run}; rc=$?; "
              f"ls -A {shlex.quote(str(full))}; exit $rc")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "No space left on device" in errors[0], res.stderr
    assert res.stdout.strip() == ""  # the tmpfs held nothing: no result, no temp file
    assert src.stat().st_size > 256 * 1024 and not list(full.iterdir())


def test_process_keeps_the_source_intact_and_carries_exif(tmp_path):
    src = need(CANON_CHECKER)
    before = src.read_bytes()
    res = process_file("twostop", {}, src, tmp_path)
    assert src.read_bytes() == before
    exif = read_exif(res.output)
    source_exif = read_exif(src)
    for key in ("Exif.Image.Make", "Exif.Image.Model", "Exif.Photo.ExposureTime", "Exif.Photo.DateTimeOriginal"):
        assert exif.get(key) == source_exif.get(key), key
    assert exif["Exif.Image.Orientation"] == "1"


def test_unreadable_inputs_give_one_clear_error(tmp_path):
    (tmp_path / "text.tif").write_text("not a tiff")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"text.tif: cannot read as TIF"):
        read_image(tmp_path / "text.tif")
    with pytest.raises(InputError, match="empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.tif")


def test_binned_tiff_does_not_carry_the_source_shape_description(tmp_path):
    """Issue 10 #9: tifffile's own {"shape": …} description of the source was copied to every result."""
    import json
    import warnings

    src = tmp_path / "src.tif"
    tifffile.imwrite(src, np.random.default_rng(0).random((128, 128, 3)).astype(np.float32), photometric="rgb")
    assert json.loads(tifffile.TiffFile(src).pages[0].description) == {"shape": [128, 128, 3]}
    out = process_file("bin", {"factor": 2}, src, tmp_path).output
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tifffile.TiffFile(out) as tif:
            data = tif.asarray()
            description = tif.pages[0].description
    assert data.shape == (64, 64, 3) and "shape" not in description


def test_raw_shooting_data_is_carried_with_a_sane_f_number(tmp_path):
    """Issue 10 #17: ISO, focal length, lens and camera from a CRW's maker notes; FNumber as n/10."""
    src = need(CANON_CHECKER)
    out = process_file("bin", {"factor": 4}, src, tmp_path).output
    exif = read_exif(out)
    assert exif["Exif.Image.Make"] == "Canon" and exif["Exif.Image.Model"] == "Canon PowerShot S40"
    assert int(exif["Exif.Photo.ISOSpeedRatings"]) > 0
    num, den = (int(v) for v in exif["Exif.Photo.FNumber"].split("/"))
    assert den == 10 and 2.0 <= num / den <= 8.0
    focal = [int(v) for v in exif["Exif.Photo.FocalLength"].split("/")]
    assert 7.0 <= focal[0] / focal[1] <= 21.4  # the S40's 7.1–21.3 mm zoom
    assert exif["Exif.Photo.LensModel"] == "7.1-21.3 mm"
    assert exif["Exif.Photo.DateTimeOriginal"] and exif["Exif.Photo.ExposureTime"]


def test_highlights_rolled_off_below_white_never_reach_the_format_maximum(tmp_path):
    """Issue 10 #13: a value just below 1.0 (a roll-off shoulder) rounded to 65535/255; only ≥ 1.0 may."""
    x = np.array([[[0.99999994, 0.9999999, 0.5], [1.0, 1.2, 0.1]]], np.float32)
    for fmt, top, read in (("tif16", 65535, tifffile.imread),
                           ("png", 65535, imagecodecs.imread), ("jpg", 255, None)):
        path = tmp_path / f"x.{fmt[:3]}"
        write_image(path, x, fmt)
        data = read(path) if read else quantize(srgb_encode(x), x, 255, np.uint8)  # jpg is lossy: its quantiser
        assert data[0, 0, 0] == top - 1 and data[0, 0, 1] == top - 1, fmt
        assert data[0, 1, 0] == top and data[0, 1, 1] == top, fmt
