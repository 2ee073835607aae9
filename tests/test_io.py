"""File I/O: TIFF/PNG/JPEG in and out, ICC profiles, atomic never-overwriting writes, EXIF carried over."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from pyops.color import rgb_to_xyz_d50, srgb_decode, srgb_encode
from pyops.io import icc
from pyops.io.files import InputError, output_name, write_atomic
from pyops.io.images import read_image, write_image
from pyops.io.metadata import read_exif
from pyops.process import process_file
from tests.conftest import CANON_CHECKER, need


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


def test_process_keeps_the_source_intact_and_carries_exif(tmp_path):
    src = need(CANON_CHECKER)
    before = src.read_bytes()
    res = process_file("twostop", {}, src, tmp_path)
    assert src.read_bytes() == before
    exif = read_exif(res.output)
    source_exif = read_exif(src)
    for key in ("Exif.Image.Make", "Exif.Image.Model", "Exif.Photo.ExposureTime", "Exif.Photo.FNumber"):
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
