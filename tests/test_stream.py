"""Streaming (issue 12): a large TIFF — uncompressed (memory-mapped) or in compressed strips or tiles (decoded a
segment at a time) — is deconvolved a tile at a time from and to disk (pyops.io.stream, tiles.stream) — the very pixels an in-memory run gives, the result published only when
complete, its provenance and EXIF in an XMP packet written in place — and the noise model and λ of a tall image
come from bands of rows spread over it. `stream.LARGE` is lowered so that small files stream."""
from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pyexiv2
import pytest
import tifffile

from pyops.io import stream
from pyops.io.files import InputError
from pyops.io.images import to_linear
from pyops.ops.deconv import rl, tiles
from pyops.process import process_file, streams
from pyops.registry import Cancelled, get
from tests.test_tiles import photo


def _tiffs(folder, grey: bool):
    """The blurred test photo as a 16-bit TIFF with a camera's EXIF, uncompressed (memory-mapped), in deflate strips
    and in LZW tiles (both with the horizontal predictor: decoded a segment at a time)."""
    noisy, k, _ = photo()
    data = np.round(np.clip(noisy[..., 1] if grey else noisy, 0, 1) * 65535).astype(np.uint16)
    flat, strips, tiled = folder / "flat.tif", folder / "strips.tif", folder / "tiled.tif"
    kind = "minisblack" if grey else "rgb"
    tifffile.imwrite(flat, data, photometric=kind)
    tifffile.imwrite(strips, data, photometric=kind, compression="zlib", predictor=True, rowsperstrip=24)
    tifffile.imwrite(tiled, data, photometric=kind, compression="lzw", predictor=True, tile=(112, 144))
    with pyexiv2.Image(str(flat)) as img:
        img.modify_exif({"Exif.Image.Make": "Canon", "Exif.Photo.ExposureTime": "1/60"})
    return flat, strips, tiled, k


@pytest.mark.parametrize("grey, params", [(True, {}), (False, {}), (False, {"luminance_only": True})])
def test_a_streamed_tiff_gives_the_pixels_of_an_in_memory_run(tmp_path, monkeypatch, grey, params):
    monkeypatch.setattr(tiles, "TILE", 256)  # 3×4 tiles on the 640×960 photo
    monkeypatch.setattr(stream, "LARGE", 0)
    flat, strips, tiled, k = _tiffs(tmp_path, grey)
    op = get("deconvolve")
    p = op.parse({"psf": k, "iterations": 12, **params})
    assert streams(op, p, flat, None) and streams(op, p, strips, None) and streams(op, p, tiled, None)
    assert not streams(op, p, flat, "png")  # only into a TIFF
    runs = [process_file("deconvolve", p, f, tmp_path / f.stem) for f in (flat, strips, tiled)]
    monkeypatch.setattr(stream, "LARGE", 1 << 40)  # read whole
    assert not streams(op, p, flat, None)
    whole = process_file("deconvolve", p, flat, tmp_path / "whole")
    assert {r.info["tiles"] for r in runs + [whole]} == {12}
    assert {r.info["iterations"] for r in runs + [whole]} == {whole.info["iterations"]}
    pixels = [tifffile.imread(r.output) for r in runs]
    pw = tifffile.imread(whole.output)
    assert pw.shape == tifffile.imread(flat).shape and pw.dtype == np.uint16
    for px in pixels:
        assert np.array_equal(px, pw)
    assert np.abs(pw.astype(np.int32) - tifffile.imread(flat)).max() > 1000  # it was deconvolved
    with pyexiv2.Image(str(runs[0].output)) as img:  # the provenance is written into the streamed result too
        xmp = img.read_xmp()
    assert json.loads(xmp["Xmp.pyops.info"])["tiles"] == 12 and xmp["Xmp.pyops.operator"] == "deconvolve"
    assert xmp["Xmp.tiff.Make"] == "Canon" and xmp["Xmp.exif.ExposureTime"] == "1/60"  # the input's EXIF, as XMP
    monkeypatch.setattr(stream, "LARGE", 4 * pw.size + 1)  # one byte more than its pixels as floats: read whole
    assert not streams(op, p, flat, None)
    monkeypatch.setattr(stream, "LARGE", 4 * pw.size)
    assert streams(op, p, flat, None)
    with tifffile.TiffFile(runs[0].output) as tif:
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
    tifffile.imwrite(packed, data, compression="zlib", predictor=True, rowsperstrip=16)
    p = get("deconvolve").parse({"psf": k, "iterations": 8})
    assert streams(get("deconvolve"), p, flat, None) and streams(get("deconvolve"), p, packed, None)
    a = process_file("deconvolve", p, flat, tmp_path / "a")
    b = process_file("deconvolve", p, packed, tmp_path / "b")
    monkeypatch.setattr(stream, "LARGE", 1 << 40)
    whole = process_file("deconvolve", p, flat, tmp_path / "whole")
    monkeypatch.setattr(stream, "LARGE", 0)
    for run in (a, b):
        assert np.array_equal(tifffile.imread(run.output), tifffile.imread(whole.output))
    for run in (a, b, whole):
        assert any(n.startswith("40 non-finite") for n in run.info["notes"]), run.info["notes"]
    tifffile.imwrite(tmp_path / "empty.tif", np.full((64, 96), np.nan, np.float32))
    with pytest.raises(InputError, match="no finite pixel value"):
        process_file("deconvolve", p, tmp_path / "empty.tif", tmp_path / "c")


def test_a_cancelled_stream_leaves_no_file_and_the_source_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(tiles, "TILE", 256)
    monkeypatch.setattr(stream, "LARGE", 0)
    flat, _, _, k = _tiffs(tmp_path, True)
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.tif", "strips.tif", "tiled.tif"]  # no result
    assert hashlib.sha256(flat.read_bytes()).hexdigest() == before


def test_which_tiffs_are_streamed(tmp_path, monkeypatch):
    """8/16-bit and float samples, interleaved; uncompressed, in compressed strips or tiles — but not a file whose
    one strip holds the whole image (decoding a part would decode it all)."""
    monkeypatch.setattr(stream, "LARGE", 0)
    monkeypatch.setattr(stream, "SEGMENT_BYTES", 40 * 60 * 3 * 2 - 1)  # less than the whole image
    data = np.zeros((40, 60, 3), np.uint16)
    cases = {"flat.tif": ({}, True), "zip.tif": ({"compression": "zlib", "rowsperstrip": 8}, True),
             "tiled.tif": ({"tile": (32, 32), "compression": "lzw"}, True), "float.tif": ({"dtype": np.float32}, True),
             "byte.tif": ({"dtype": np.uint8, "compression": "zstd", "rowsperstrip": 8}, True),
             "one-strip.tif": ({"compression": "zlib", "rowsperstrip": 40}, False),
             "double.tif": ({"dtype": np.float64}, False),
             "planar.tif": ({"planarconfig": "separate", "compression": "zlib"}, False)}
    for name, (kw, expected) in cases.items():
        kw = dict(kw)
        arr = data.astype(kw.pop("dtype", np.uint16))
        tifffile.imwrite(tmp_path / name, arr, photometric="rgb", **kw)
        assert stream.large(tmp_path / name) is expected, name
    (tmp_path / "broken.tif").write_bytes(b"II*\0garbage")
    assert not stream.large(tmp_path / "broken.tif")


def test_a_compressed_tiff_is_read_in_parts_as_stored(tmp_path):
    """Any part of a tiled or stripped compressed TIFF, read a segment at a time, is the stored pixels; the
    segments kept between reads are those of the last band of rows."""
    rng = np.random.default_rng(4)
    data = rng.integers(0, 65535, (301, 263, 3), dtype=np.uint16)
    for name, kw in (("tiles.tif", {"tile": (64, 48), "compression": "zlib"}),
                     ("strips.tif", {"rowsperstrip": 10, "compression": "lzw", "predictor": True})):
        tifffile.imwrite(tmp_path / name, data, photometric="rgb", **kw)
        reader = stream.Reader(tmp_path / name)
        assert not reader.mapped and reader.shape == (301, 263, 3)
        for _ in range(40):
            r0, c0 = rng.integers(0, 300), rng.integers(0, 262)
            r1, c1 = rng.integers(r0 + 1, 302), rng.integers(c0 + 1, 264)
            assert np.array_equal(reader._read(r0, r1, c0, c1), data[r0:r1, c0:c1]), (name, r0, r1, c0, c1)
        (sh, _), (_, nx) = reader.chunk, reader.chunked
        assert reader._segments and all(r0 < k // nx * sh + sh and k // nx * sh < r1 for k in reader._segments)
        expected, _ = to_linear(data, None, tmp_path / name, [])
        assert np.array_equal(reader(0, 301, 0, 263), expected)
        clone = pickle.loads(pickle.dumps(reader))  # as a Dask worker gets it: without the decoded segments
        assert clone._segments == {} and np.array_equal(clone._read(5, 99, 7, 200), data[5:99, 7:200])


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
