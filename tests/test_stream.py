"""Streaming (issue 12): a large uncompressed TIFF is deconvolved a tile at a time from and to disk
(pyops.io.stream, tiles.stream) — the very pixels an in-memory run gives, the result published only when
complete, its provenance and EXIF in an XMP packet written in place — and the noise model and λ of a tall image
come from bands of rows spread over it. `stream.LARGE` is lowered so that small files stream."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pyexiv2
import pytest
import tifffile

from pyops.io import stream
from pyops.io.files import InputError
from pyops.ops.deconv import rl, tiles
from pyops.process import process_file, streams
from pyops.registry import Cancelled, get
from tests.test_tiles import photo


def _tiffs(folder, grey: bool):
    """The blurred test photo as a 16-bit TIFF with a camera's EXIF, uncompressed (streamed) and zlib-compressed
    (read whole)."""
    noisy, k, _ = photo()
    data = np.round(np.clip(noisy[..., 1] if grey else noisy, 0, 1) * 65535).astype(np.uint16)
    flat, packed = folder / "flat.tif", folder / "packed.tif"
    kind = "minisblack" if grey else "rgb"
    tifffile.imwrite(flat, data, photometric=kind)
    tifffile.imwrite(packed, data, photometric=kind, compression="zlib")
    with pyexiv2.Image(str(flat)) as img:
        img.modify_exif({"Exif.Image.Make": "Canon", "Exif.Photo.ExposureTime": "1/60"})
    return flat, packed, k


@pytest.mark.parametrize("grey, params", [(True, {}), (False, {}), (False, {"luminance_only": True})])
def test_a_streamed_tiff_gives_the_pixels_of_an_in_memory_run(tmp_path, monkeypatch, grey, params):
    monkeypatch.setattr(tiles, "TILE", 256)  # 3×4 tiles on the 640×960 photo
    monkeypatch.setattr(stream, "LARGE", 0)
    flat, packed, k = _tiffs(tmp_path, grey)
    op = get("deconvolve")
    p = op.parse({"psf": k, "iterations": 12, **params})
    assert streams(op, p, flat, None) and not streams(op, p, packed, None)
    assert not streams(op, p, flat, "png")  # only into a TIFF
    a = process_file("deconvolve", p, flat, tmp_path / "a")
    b = process_file("deconvolve", p, packed, tmp_path / "b")
    assert a.info["tiles"] == b.info["tiles"] == 12 and a.info["iterations"] == b.info["iterations"]
    pa, pb = tifffile.imread(a.output), tifffile.imread(b.output)
    assert pa.shape == pb.shape == tifffile.imread(flat).shape and pa.dtype == np.uint16
    assert np.array_equal(pa, pb)
    assert np.abs(pa.astype(np.int32) - tifffile.imread(flat)).max() > 1000  # it was deconvolved
    with pyexiv2.Image(str(a.output)) as img:  # the provenance is written into the streamed result too
        xmp = img.read_xmp()
    assert json.loads(xmp["Xmp.pyops.info"])["tiles"] == 12 and xmp["Xmp.pyops.operator"] == "deconvolve"
    assert xmp["Xmp.tiff.Make"] == "Canon" and xmp["Xmp.exif.ExposureTime"] == "1/60"  # the input's EXIF, as XMP
    monkeypatch.setattr(stream, "LARGE", 4 * pa.size + 1)  # one byte more than its pixels as floats: read whole
    assert not streams(op, p, flat, None)
    with tifffile.TiffFile(a.output) as tif:
        assert 34675 in tif.pages[0].tags  # with the linear ICC profile, as write_image writes one


def test_a_float_tiff_with_missing_pixels_streams_like_an_in_memory_run(tmp_path, monkeypatch):
    """A 32-bit float stack with NaN and inf pixels (dead pixels, an empty patch): filled within each tile read,
    which away from the tiles' edges is the whole image's fill — the same result, the same note; an image without
    a finite value is refused."""
    monkeypatch.setattr(tiles, "TILE", 256)
    monkeypatch.setattr(stream, "LARGE", 0)
    noisy, k, _ = photo()
    data = noisy[..., 1].copy()
    for r, c in ((100, 100), (300, 600), (500, 850)):  # ≥ 10 px from every core and tile edge
        data[r, c] = np.nan
    data[200, 150] = np.inf
    data[60:66, 380:386] = np.nan
    flat, packed = tmp_path / "flat.tif", tmp_path / "packed.tif"
    tifffile.imwrite(flat, data)
    tifffile.imwrite(packed, data, compression="zlib")
    p = get("deconvolve").parse({"psf": k, "iterations": 8})
    assert streams(get("deconvolve"), p, flat, None)
    a = process_file("deconvolve", p, flat, tmp_path / "a")
    b = process_file("deconvolve", p, packed, tmp_path / "b")
    assert np.array_equal(tifffile.imread(a.output), tifffile.imread(b.output))
    count = [n for n in a.info["notes"] if "non-finite" in n]
    assert count and count[0].startswith("40 non-finite") and any(n.startswith("40 non-finite") for n in b.info["notes"])
    tifffile.imwrite(tmp_path / "empty.tif", np.full((64, 96), np.nan, np.float32))
    with pytest.raises(InputError, match="no finite pixel value"):
        process_file("deconvolve", p, tmp_path / "empty.tif", tmp_path / "c")


def test_a_cancelled_stream_leaves_no_file_and_the_source_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(tiles, "TILE", 256)
    monkeypatch.setattr(stream, "LARGE", 0)
    flat, _, k = _tiffs(tmp_path, True)
    before = hashlib.sha256(flat.read_bytes()).hexdigest()
    seen = set()

    def progress(f: float, msg: str) -> None:
        if msg.startswith("tile "):
            seen.add(msg.split(":")[0])
        if len(seen) == 6:  # in the second row of tiles: the first band of rows is written
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        process_file("deconvolve", {"psf": k, "iterations": 5}, flat, progress=progress)
    assert len(seen) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.tif", "packed.tif"]  # no result, no temp file
    assert hashlib.sha256(flat.read_bytes()).hexdigest() == before


def test_only_uncompressed_8_16_bit_and_float_tiffs_are_streamed(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "LARGE", 0)
    data = np.zeros((40, 60, 3), np.uint16)
    cases = {"flat.tif": ({}, True), "zip.tif": ({"compression": "zlib"}, False),
             "tiled.tif": ({"tile": (32, 32)}, False), "float.tif": ({"dtype": np.float32}, True),
             "double.tif": ({"dtype": np.float64}, False),
             "planar.tif": ({"planarconfig": "separate"}, False)}
    for name, (kw, expected) in cases.items():
        kw = dict(kw)
        arr = data.astype(kw.pop("dtype", np.uint16))
        tifffile.imwrite(tmp_path / name, arr, photometric="rgb", **kw)
        assert stream.large(tmp_path / name) is expected, name
    (tmp_path / "broken.tif").write_bytes(b"II*\0garbage")
    assert not stream.large(tmp_path / "broken.tif")


def test_a_tall_images_noise_model_and_lambda_come_from_bands_spread_over_it(monkeypatch):
    noisy, _, _ = photo()
    whole_model, whole_lam = rl.prepare(noisy, rl.Options())[2:]
    monkeypatch.setattr(tiles, "SAMPLE_BANDS", 8)  # 8 × 32 of the 640 rows
    sample = tiles._sample(lambda r0, r1, c0, c1: noisy[r0:r1, c0:c1], *noisy.shape[:2])
    assert sample.shape == (256, 960, 3)
    model, lam = rl.prepare(sample, rl.Options(), rl.white_levels(rl.observed(noisy), None), tiles.SAMPLE_ROWS)[2:]
    assert abs(lam / whole_lam - 1) < 0.05, (lam, whole_lam)  # measured 0.98
    assert np.allclose(model.a, whole_model.a, rtol=0.05), (model.a, whole_model.a)  # measured ≤ 3 %
    assert model.correlation == whole_model.correlation


def test_the_memory_a_streamed_run_is_admitted_with_covers_its_peak(tmp_path, monkeypatch):
    """As tests/test_memory.py calibrates the in-memory runs: a child streams a 12 MP mono TIFF (3 × 4 tiles) after
    a warm-up run, and the rise of its peak RSS must be within the estimate, and the estimate within 2.5× it."""
    import subprocess
    import sys
    from pathlib import Path

    from pyops import memory
    from tests.test_memory import ABSURD, UNSAFE

    monkeypatch.setattr(stream, "LARGE", 0)
    rng = np.random.default_rng(0)
    src, tiny, out = tmp_path / "big.tif", tmp_path / "tiny.tif", tmp_path / "out"
    out.mkdir()
    tifffile.imwrite(src, (rng.random((3000, 4000)) * 30000 + 5000).astype(np.uint16))
    tifffile.imwrite(tiny, (rng.random((64, 96)) * 30000 + 5000).astype(np.uint16))
    params = {"iterations": 3, "stop": "none"}
    child = ("import json, sys; from pathlib import Path; import pyops.io.stream as s; s.LARGE = 0; "
             "from tests.test_memory import _measure; print(_measure('deconvolve', json.loads(sys.argv[1]), "
             "*map(Path, sys.argv[2:5])))")
    res = subprocess.run([sys.executable, "-c", child, json.dumps(params), str(src), str(tiny), str(out)],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    measured = int(res.stdout.split()[-1])
    op = get("deconvolve")
    estimate = memory.estimate(op, op.parse(params), src)
    assert streams(op, op.parse(params), src, None)
    print(f"measured {measured / 1e6:.0f} MB, estimate {estimate / 1e6:.0f} MB")
    assert measured > 20e6 and UNSAFE * measured <= estimate <= ABSURD * measured, (measured, estimate)
    in_memory = op.memory(3000, 4000, 1, op.parse(params)) + 4 * 3000 * 4000
    assert estimate < in_memory  # streaming admits it with less: no input, no result held
