"""Just enough ICC (ICC.1:2001-04, v2.1 matrix/TRC display profiles) to keep pixels honest.

pyops works on linear values, so every TIFF it writes carries a *linear* matrix/TRC profile with the
colorants of its data (a `curv` with no entries is the identity curve); other programs then show it right.
When reading, the tone curve of an RGB matrix/TRC profile (`curv` gamma or table, `para` functions of ICC.1:2004
§10.15) is undone so operators see linear light. LUT-based profiles are not interpreted: such input is taken
as sRGB-encoded and a note says so.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pyops.color import D50_XYZ, rgb_to_xyz_d50


def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    a = text.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def _text_tag(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode("ascii") + b"\0"


def linear_profile(colorants: np.ndarray | None = None, description: str = "pyops linear sRGB") -> bytes:
    """A v2.1 RGB display profile with the given D50 colorant matrix (columns = R, G, B in XYZ; default
    linear sRGB/Rec.709 primaries) and identity tone curves."""
    m = rgb_to_xyz_d50("srgb") if colorants is None else np.asarray(colorants, float)
    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 0)
    tags = [
        (b"desc", _desc_tag(description)),
        (b"cprt", _text_tag("No copyright, use freely")),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"rXYZ", _xyz_tag(m[:, 0])),
        (b"gXYZ", _xyz_tag(m[:, 1])),
        (b"bXYZ", _xyz_tag(m[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    table, blob = [], b""
    for sig, data in tags:
        pad = (-len(blob)) % 4
        blob += b"\0" * pad
        table.append(struct.pack(">4sII", sig, offset + len(blob), len(data)))
        blob += data
    body = struct.pack(">I", len(tags)) + b"".join(table) + blob
    size = 128 + len(body)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in D50_XYZ) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + body


@dataclass(frozen=True)
class ProfileInfo:
    colorants: np.ndarray | None  # 3×3 D50 XYZ columns, None if not a matrix profile
    decode: Callable[[np.ndarray], np.ndarray] | None  # encoded [0,1] → linear, None if unknown
    linear: bool


def _tags(icc: bytes) -> dict[bytes, bytes]:
    (n,) = struct.unpack(">I", icc[128:132])
    out = {}
    for i in range(n):
        sig, off, size = struct.unpack(">4sII", icc[132 + 12 * i: 144 + 12 * i])
        out[sig] = icc[off: off + size]
    return out


def _curve(tag: bytes) -> tuple[Callable[[np.ndarray], np.ndarray], bool] | None:
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack(">I", tag[8:12])
        if n == 0:
            return (lambda x: x), True
        if n == 1:
            g = struct.unpack(">H", tag[12:14])[0] / 256.0
            return (lambda x: np.power(np.clip(x, 0, 1), g)), g == 1.0
        table = np.frombuffer(tag[12: 12 + 2 * n], ">u2").astype(np.float32) / 65535.0
        grid = np.linspace(0.0, 1.0, n, dtype=np.float32)
        return (lambda x: np.interp(x, grid, table).astype(np.float32)), bool(np.allclose(table, grid, atol=1e-3))
    if kind == b"para":
        (fn,) = struct.unpack(">H", tag[8:10])
        count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(fn)
        if count is None:
            return None
        p = [v / 65536.0 for v in struct.unpack(f">{count}i", tag[12: 12 + 4 * count])]
        g, *rest = p
        a, b, c, d, e, f = rest + [1.0, 0.0, 0.0, 0.0, 0.0, 0.0][len(rest):]
        if fn == 0:
            return (lambda x: np.power(np.clip(x, 0, 1), g)), g == 1.0
        if fn == 1:
            return (lambda x: np.where(x >= -b / a, np.power(np.maximum(a * x + b, 0), g), 0.0)), False
        if fn == 2:
            return (lambda x: np.where(x >= -b / a, np.power(np.maximum(a * x + b, 0), g) + c, c)), False
        if fn == 3:
            return (lambda x: np.where(x >= d, np.power(np.maximum(a * x + b, 0), g), c * x)), False
        return (lambda x: np.where(x >= d, np.power(np.maximum(a * x + b, 0), g) + e, c * x + f)), False
    return None


def inspect(icc: bytes | None) -> ProfileInfo | None:
    """Colorants and tone curve of an RGB matrix/TRC profile; None if absent or unreadable."""
    if not icc or len(icc) < 132 or icc[16:20] != b"RGB ":
        return None
    try:
        tags = _tags(icc)
        colorants = None
        if all(t in tags for t in (b"rXYZ", b"gXYZ", b"bXYZ")):
            colorants = np.array([[v / 65536.0 for v in struct.unpack(">3i", tags[t][8:20])]
                                  for t in (b"rXYZ", b"gXYZ", b"bXYZ")]).T
        curve = _curve(tags[b"rTRC"]) if b"rTRC" in tags else None
    except (struct.error, KeyError, ValueError):
        return None
    if curve is None:
        return ProfileInfo(colorants, None, False)
    fn, linear = curve
    return ProfileInfo(colorants, fn, linear)
