"""Large TIFFs read and written a tile at a time, so an operator that works in tiles (Operator.stream) needs
memory for its tiles, not for the image and its result.

Uncompressed, untiled TIFFs with 8- or 16-bit or 32-bit float samples — what stackers and stitchers write for
large mosaics, and what tifffile can memory-map — whose pixels as floats take LARGE bytes or more are read through
a memory map that lives only for one read: the rows and columns asked for are copied out and the map is closed, so
the pages read do not stay in the process's resident memory (a map kept open holds every page it has touched).
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


def large(path: Path, threshold: int | None = None) -> bool:
    """Whether `path` is a TIFF to stream: its pixels as floats take `threshold` (default LARGE) bytes or more, and
    its first image can be read in parts through a memory map (uncompressed, untiled, contiguous, native byte
    order, 8- or 16-bit or 32-bit float samples, one or all samples per pixel interleaved)."""
    if Path(path).suffix.lower() not in TIFF_EXT:
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return bool(page.is_memmappable and page.dtype.str[1:] in ("u1", "u2", "f4")
                        and page.ndim in (2, 3) and (page.ndim == 2 or page.planarconfig == 1)
                        and 4 * int(np.prod(page.shape)) >= (LARGE if threshold is None else threshold))
    except Exception:  # noqa: BLE001 — tifffile raises many types for broken files; the reader will say why
        return False


class Reader:
    """tiles.Reader over a mappable TIFF: (r0, r1, c0, c1) → linear float32 rows × columns × channels."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[0]
            self.offset, self.dtype, self.layout = int(page.dataoffsets[0]), page.dtype, tuple(page.shape)
            tag = page.tags.get(34675)
            self.profile = bytes(tag.value) if tag is not None else None
        self.notes: list[str] = []  # what the conversion assumed (images.to_linear), as for the whole file
        x, self.colorants = to_linear(self._read(0, 1, 0, 1), self.profile, self.path, self.notes)
        self.shape = (self.layout[0], self.layout[1], 1 if x.ndim == 2 else x.shape[2])
        self.nonfinite = self._count_nonfinite() if self.dtype.kind == "f" else 0
        if self.nonfinite:
            self.notes.append(f"{self.nonfinite} non-finite pixel value(s) (NaN/inf) treated as missing and filled "
                              "from their nearest finite neighbours within each tile")

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
        mm = np.memmap(self.path, self.dtype, "r", self.offset, self.layout)
        part = np.array(mm[r0:r1, c0:c1])
        del mm  # unmapped now (no view of it is left): the pages read leave this process's memory
        return part

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
