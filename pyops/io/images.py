"""Developed images in and out: TIFF (8/16-bit, 32-bit float, any compression tifffile + imagecodecs read,
e.g. darktable's deflate with predictor), PNG and JPEG, NumPy .npy arrays (raw pixels: what the GIMP plug-in
sends), and camera raws developed linearly.

Everything is converted to linear float32 on the way in: the tone curve of an embedded matrix/TRC ICC profile
is undone; without a profile, integer files are taken as sRGB-encoded and float files as linear. On the way
out TIFFs are linear with a linear ICC profile of the same primaries; PNG and JPEG are sRGB-encoded."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image as PILImage

from pyops.color import rgb_to_xyz_d50, srgb_decode, srgb_encode
from pyops.io import icc
from pyops.io.files import InputError, check_input
from pyops.io.raw import develop, load_mosaic

TIFF_EXT = {".tif", ".tiff"}
PIL_EXT = {".png", ".jpg", ".jpeg"}
NPY_EXT = {".npy"}  # H×W or H×W×C pixels: float = linear, uint8/uint16 = sRGB-encoded; no metadata
FORMATS = {"tif16": ".tif", "tif32": ".tif", "png": ".png", "jpg": ".jpg", "npy": ".npy", "dng": ".dng"}


@dataclass
class Image:
    """Linear float32 pixels (H×W or H×W×C) and the colorants of their RGB space (3×3 D50 XYZ columns)."""

    pixels: np.ndarray
    colorants: np.ndarray = field(default_factory=lambda: rgb_to_xyz_d50("srgb"))
    notes: list[str] = field(default_factory=list)


def is_raw(path: Path) -> bool:
    return Path(path).suffix.lower() not in TIFF_EXT | PIL_EXT | NPY_EXT


def _normalise(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    raise InputError(f"{path}: unsupported sample type {arr.dtype}")


def _linearise(x: np.ndarray, profile: bytes | None, integer: bool, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    info = icc.inspect(profile)
    colorants = info.colorants if info is not None and info.colorants is not None else rgb_to_xyz_d50("srgb")
    if info is not None and info.decode is not None:
        return (x if info.linear else info.decode(x).astype(np.float32)), colorants
    if profile:
        notes.append("ICC profile not interpreted (not matrix/TRC): taken as sRGB-encoded")
    return (srgb_decode(x) if integer or profile else x), colorants


def _drop_alpha(arr: np.ndarray, notes: list[str]) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        notes.append("alpha channel dropped")
        return arr[..., :-1]
    return arr


def read_image(path: Path, colorspace: str = "srgb") -> Image:
    """Any supported input as linear float32; raws are developed linearly into `colorspace`."""
    path = check_input(Path(path))
    notes: list[str] = []
    if is_raw(path):
        return Image(develop(path, colorspace), rgb_to_xyz_d50(colorspace))
    try:
        if path.suffix.lower() in NPY_EXT:
            arr, profile = np.load(path, allow_pickle=False), None
            if arr.ndim == 3 and not 1 <= arr.shape[2] <= 4:
                raise InputError(f"{path}: an .npy image is H×W or H×W×C with 1–4 channels, got {arr.shape}")
        elif path.suffix.lower() in TIFF_EXT:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                arr = page.asarray()
                tag = page.tags.get(34675)
                profile = bytes(tag.value) if tag is not None else None
        else:
            with PILImage.open(path) as im:
                profile = im.info.get("icc_profile")
            arr = imagecodecs.imread(path)
    except InputError:
        raise
    except Exception as err:  # tifffile, imagecodecs and Pillow raise many types for broken files
        raise InputError(f"{path}: cannot read as {path.suffix.lstrip('.').upper()} ({err})") from None
    if arr.ndim not in (2, 3):
        raise InputError(f"{path}: unsupported image layout {arr.shape}")
    x, colorants = to_linear(arr, profile, path, notes)
    return Image(np.ascontiguousarray(x), colorants, notes)


def to_linear(arr: np.ndarray, profile: bytes | None, path: Path, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A file's samples (all of them, or a part: every step is per pixel) as linear float32, alpha dropped, and the
    colorants of their RGB space; what was assumed is added to `notes`."""
    arr = _drop_alpha(arr, notes)
    return _linearise(_normalise(arr, path), profile, arr.dtype.kind != "f", notes)


def load_input(path: Path, raw: bool) -> tuple[object, np.ndarray | None, list[str]]:
    """What an operator takes from a file: the raw mosaic (raw-domain operators) or linear pixels, with the
    colorants of those pixels and notes about the reading."""
    if raw:
        return load_mosaic(Path(path)), None, []
    img = read_image(path)
    return img.pixels, img.colorants, list(img.notes)


def quantize(values: np.ndarray, linear: np.ndarray, top: int, dtype) -> np.ndarray:
    """`values` in [0, 1] (linear or encoded) → integers 0..top, rounded, except that only pixels whose
    `linear` value is ≥ 1.0 (white: clipped) become `top`: a highlight rolled off just below white stays
    below the format's maximum."""
    q = np.round(np.clip(values, 0, 1) * top)
    return np.where((q >= top) & (linear < 1.0), top - 1, q).astype(dtype)


def write_image(path: Path, pixels: np.ndarray, fmt: str, colorants: np.ndarray | None = None) -> None:
    """Write linear float pixels as `fmt` (tif16, tif32, png, jpg, npy)."""
    x = np.asarray(pixels, np.float32)
    if fmt in ("png", "jpg") and colorants is not None and x.ndim == 3:
        x = x @ (np.linalg.inv(rgb_to_xyz_d50("srgb")) @ colorants).T.astype(np.float32)
    if fmt in ("tif16", "tif32"):
        profile = icc.linear_profile(colorants)
        data = x if fmt == "tif32" else quantize(x, x, 65535, np.uint16)
        tifffile.imwrite(path, data, photometric="rgb" if data.ndim == 3 else "minisblack",
                         compression="zlib", metadata=None,
                         extratags=[(34675, "B", len(profile), profile, True)])
    elif fmt == "png":
        path.write_bytes(imagecodecs.png_encode(quantize(srgb_encode(x), x, 65535, np.uint16)))
    elif fmt == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.ascontiguousarray(x))
    elif fmt == "jpg":
        data = quantize(srgb_encode(x), x, 255, np.uint8)
        PILImage.fromarray(data).save(path, format="JPEG", quality=95)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
