"""Large TIFFs read and written a tile at a time, so an operator that works in tiles (Operator.stream) needs
memory for its tiles, not for the image and its result.

A TIFF with 8- or 16-bit or 32-bit float samples (one, or all interleaved in each pixel) whose pixels as floats
take LARGE bytes or more is read in parts. An uncompressed, contiguous one — what stackers and stitchers write
for large mosaics — through a memory map that lives only for one read: the rows and columns asked for are copied
out and the map is closed, so the pages read do not stay in the process's resident memory (a map kept open holds
every page it has touched). A compressed or tiled one (deflate, LZW, zstd… with or without a predictor, as
photo editors and astro stackers save) by decoding only the strips or tiles that hold the part asked for
(tifffile's TiffPage.decode); the segments of the last band of rows read are kept, so the tiles along one band
decode each strip once. A file whose strips are too large to decode a few at a time (one strip for the whole
image) is read whole.
Each part goes through the same per-pixel conversion as a whole file (images.to_linear), so a streamed run sees the
very pixels an in-memory one does — except that a float file's NaN and ±inf pixels (a stacked mosaic's empty
borders) are filled from their nearest finite neighbour within each tile read, and a tile with none is 0
(ops.finite). The result is written the same way into an uncompressed TIFF that tifffile lays out
(tifffile.memmap): 16-bit or 32-bit float, linear, with the linear ICC profile of the input's primaries, as
images.write_image writes one. exiv2 rewrites a whole file to change its metadata (twice its size in memory), so
the result's metadata is one XMP packet — the provenance and the input's EXIF as XMP — written into space the file
reserves for it (XMP_RESERVE bytes of padding, as XMP packets are meant to be updated in place).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from pyops.io import icc
from pyops.io.files import InputError
from pyops.io.images import TIFF_EXT, quantize, to_linear
from pyops.ops.finite import fill_nonfinite

STREAM_FORMATS = ("tif16", "tif32")
LARGE = 1 << 30  # bytes of float32 pixels from which a file is streamed (≈ 90 MP RGB, 270 MP mono)
BIGTIFF_BYTES = 2**32 - 2**25  # larger image data needs BigTIFF offsets
XMP_TAG, XMP_RESERVE = 700, 1 << 18  # the TIFF tag of an XMP packet, and the room a streamed result keeps for it
SEGMENT_BYTES = 64 << 20  # the largest strip or tile decoded for a part (as stored: 16-bit, not float)


def _partial(page: tifffile.TiffPage) -> bool:
    """Whether parts of `page` can be read without the rest: a memory map, or strips/tiles of bounded size that
    tifffile can decode one at a time (samples interleaved, no chroma subsampling)."""
    if page.is_memmappable:
        return True
    if page.is_subsampled or (page.ndim == 3 and page.planarconfig != 1):
        return False
    if page.compression != 1 and page.compression not in tifffile.TIFF.DECOMPRESSORS:
        return False
    return int(np.prod(page.chunks)) * page.dtype.itemsize <= SEGMENT_BYTES


def large(path: Path, threshold: int | None = None) -> bool:
    """Whether `path` is a TIFF to stream: its pixels as floats take `threshold` (default LARGE) bytes or more, and
    its first image (8- or 16-bit or 32-bit float samples, one or all samples per pixel interleaved) can be read in
    parts: memory-mapped, or decoded a strip or tile at a time."""
    if Path(path).suffix.lower() not in TIFF_EXT:
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return bool(page.dtype.str[1:] in ("u1", "u2", "f4") and page.ndim in (2, 3) and _partial(page)
                        and 4 * int(np.prod(page.shape)) >= (LARGE if threshold is None else threshold))
    except Exception:  # noqa: BLE001 — tifffile raises many types for broken files; the reader will say why
        return False


class Reader:
    """tiles.Reader over a TIFF that `large` accepts: (r0, r1, c0, c1) → linear float32 rows × columns × channels."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[0]
            self.mapped = page.is_memmappable
            self.offset, self.dtype, self.layout = int(page.dataoffsets[0]), page.dtype, tuple(page.shape)
            self.chunk, self.chunked = tuple(page.chunks[:2]), tuple(page.chunked[:2])  # segment size, grid
            tag = page.tags.get(34675)
            self.profile = bytes(tag.value) if tag is not None else None
        self._segments: dict[int, np.ndarray] = {}  # decoded strips/tiles of the last band of rows read
        self.notes: list[str] = []  # what the conversion assumed (images.to_linear), as for the whole file
        x, self.colorants = to_linear(self._read(0, 1, 0, 1), self.profile, self.path, self.notes)
        self.shape = (self.layout[0], self.layout[1], 1 if x.ndim == 2 else x.shape[2])
        self.nonfinite = self._count_nonfinite() if self.dtype.kind == "f" else 0
        if self.nonfinite:
            self.notes.append(f"{self.nonfinite} non-finite pixel value(s) (NaN/inf) treated as missing and filled "
                              "from their nearest finite neighbours within each tile")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_segments": {}}  # a Dask worker decodes its own tile's segments

    def _count_nonfinite(self) -> int:
        """NaN and ±inf values in the file, read 64 MB at a time; an image without a finite value is refused."""
        h, w, c = self.shape
        step = max(1, (64 << 20) // (w * c * 4))
        bad = np.zeros(c, np.int64)
        for r in range(0, h, step):
            part = self._read(r, min(r + step, h), 0, w)
            part = part.reshape(len(part), w, -1)[..., :c]  # no alpha (images.to_linear drops it)
            bad += np.count_nonzero(~np.isfinite(part), axis=(0, 1))
        if (bad == h * w).any():
            raise InputError(f"{self.path}: the image has no finite pixel value")
        return int(bad.sum())

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if not self.mapped:
            return self._decode(r0, r1, c0, c1)
        mm = np.memmap(self.path, self.dtype, "r", self.offset, self.layout)
        part = np.array(mm[r0:r1, c0:c1])
        del mm  # unmapped now (no view of it is left): the pages read leave this process's memory
        return part

    def _decode(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows r0:r1 × columns c0:c1 assembled from the strips or tiles that hold them."""
        (sh, sw), (ny, nx) = self.chunk, self.chunked
        band = range(r0 // sh, min(-(-r1 // sh), ny))
        wanted = [i * nx + j for i in band for j in range(c0 // sw, min(-(-c1 // sw), nx))]
        self._segments = {k: v for k, v in self._segments.items() if k // nx in band}
        missing = [k for k in wanted if k not in self._segments]
        if missing:
            with tifffile.TiffFile(self.path) as tif:
                page, fh = tif.pages[0], tif.filehandle
                for k in missing:
                    fh.seek(page.dataoffsets[k])
                    data = fh.read(page.databytecounts[k]) if page.databytecounts[k] else None
                    seg = page.decode(data, k, jpegtables=page.jpegtables)[0]
                    self._segments[k] = (np.zeros((sh, sw) + self.layout[2:], self.dtype) if seg is None
                                         else seg.reshape(seg.shape[1:3] + self.layout[2:]))
        out = np.empty((r1 - r0, c1 - c0) + self.layout[2:], self.dtype)
        for k in wanted:
            y, x = k // nx * sh, k % nx * sw
            ya, yb, xa, xb = max(y, r0), min(y + sh, r1), max(x, c0), min(x + sw, c1)
            out[ya - r0:yb - r0, xa - c0:xb - c0] = self._segments[k][ya - y:yb - y, xa - x:xb - x]
        return out

    def __call__(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        x, _ = to_linear(self._read(r0, r1, c0, c1), self.profile, self.path, [])
        if self.nonfinite:
            x, _ = fill_nonfinite(x, part=True)
        return x[..., None] if x.ndim == 2 else x


class Writer:
    """tiles.Writer into a new uncompressed TIFF at `path` (`fmt`: tif16 or tif32) of H×W×C linear pixels; counts
    the pixels at or above white (a channel ≥ 1.0), as registry.output_clipping does for an array."""

    def __init__(self, path: Path, shape: tuple[int, int, int], fmt: str, colorants: np.ndarray):
        h, w, c = shape
        self.path, self.dtype = Path(path), np.dtype(np.float32 if fmt == "tif32" else np.uint16)
        self.layout = (h, w) if c == 1 else (h, w, c)
        profile = icc.linear_profile(colorants)
        mm = tifffile.memmap(self.path, shape=self.layout, dtype=self.dtype, photometric="rgb" if c > 1 else "minisblack",
                             metadata=None, bigtiff=h * w * c * self.dtype.itemsize > BIGTIFF_BYTES,
                             extratags=[(34675, "B", len(profile), profile, True),
                                        (XMP_TAG, "B", XMP_RESERVE, b" " * XMP_RESERVE, True)])
        self.offset = int(mm.offset)
        del mm
        with tifffile.TiffFile(self.path) as tif:
            self.xmp_offset = tif.pages[0].tags[XMP_TAG].valueoffset
        self.clipped = 0
        self.pixels = h * w

    def __call__(self, r0: int, rows: np.ndarray) -> None:
        self.clipped += int(np.count_nonzero(rows.max(axis=-1) >= 1.0))
        data = rows if self.dtype == np.float32 else quantize(rows, rows, 65535, np.uint16)
        mm = np.memmap(self.path, self.dtype, "r+", self.offset, self.layout)
        mm[r0:r0 + len(rows)] = data.reshape(data.shape[:2] + self.layout[2:])
        mm.flush()
        del mm  # as in Reader: the written pages leave this process's memory

    def write_xmp(self, packet: str) -> str | None:
        """Write the XMP `packet` into the reserved space, padded with spaces (inside the packet, before its
        trailer); a warning if it does not fit."""
        head, sep, trailer = packet.rpartition("<?xpacket end=")
        data = (head if sep else packet).encode()
        tail = (sep + trailer).encode() if sep else b""
        room = XMP_RESERVE - len(data) - len(tail)
        if room < 0:
            return f"metadata not written: its {len(data) + len(tail)} bytes exceed the {XMP_RESERVE} reserved"
        with open(self.path, "r+b") as fh:
            fh.seek(self.xmp_offset)
            fh.write(data + b" " * room + tail)
        return None
