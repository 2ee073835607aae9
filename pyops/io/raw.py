"""Camera raw files through rawpy (LibRaw): the Bayer mosaic with its levels and colour data, and a linear
development (camera white balance, no auto-brightening, gamma 1, 16-bit) for operators that need RGB."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rawpy

from pyops.io.files import InputError, check_input
from pyops.mosaic import RawMosaic

# LibRaw's sizes.flip → EXIF orientation
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}
# twostop and bin --domain bayer need a Bayer mosaic; what works on a developed raw instead
_NO_MOSAIC_ADVICE = "bin it with `bin --domain rgb` (or luminance) instead of twostop or the bayer domain"
_SPACES = {"srgb": rawpy.ColorSpace.sRGB, "rec2020": rawpy.ColorSpace.Rec2020}


def open_raw(path: Path) -> rawpy.RawPy:
    """rawpy handle for `path`, or InputError with LibRaw's reason."""
    check_input(path)
    try:
        return rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError, ValueError) as err:
        reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise InputError(f"{path}: not a raw file LibRaw can read ({reason})") from None


def _camera_name(path: Path) -> tuple[str, str]:
    from pyops.io.metadata import read_exif

    exif = read_exif(path)
    return exif.get("Exif.Image.Make", "").strip(), exif.get("Exif.Image.Model", "").strip()


def load_mosaic(path: Path) -> RawMosaic:
    """The visible Bayer mosaic of a raw file. Refuses, with a reason, files that have no 2×2 RGB Bayer CFA
    (X-Trans, already demosaiced linear DNGs, CMYG sensors)."""
    path = Path(path)
    with open_raw(path) as raw:
        if raw.raw_type != rawpy.RawType.Flat or raw.raw_pattern is None:
            raise InputError(f"{path}: no colour mosaic in this raw (already demosaiced); {_NO_MOSAIC_ADVICE}")
        if raw.raw_pattern.shape != (2, 2):
            raise InputError(f"{path}: {raw.raw_pattern.shape[0]}×{raw.raw_pattern.shape[1]} CFA (X-Trans?) "
                             f"is not a Bayer pattern; {_NO_MOSAIC_ADVICE}")
        desc = raw.color_desc.decode()
        idx = raw.raw_colors_visible[:2, :2]
        letters = [desc[i] for i in idx.ravel()]
        if sorted(letters) != ["B", "G", "G", "R"]:
            raise InputError(f"{path}: CFA {''.join(letters)} is not an RGB Bayer pattern")
        cfa = np.array(["RGB".index(c) for c in letters], np.uint8).reshape(2, 2)
        black = np.asarray(raw.black_level_per_channel, np.float32)[idx]
        wb = np.asarray(raw.camera_whitebalance[:3], float)
        if not np.all(wb > 0):
            wb = np.asarray(raw.daylight_whitebalance[:3], float)
        wb = tuple(float(v) for v in (wb / wb[1] if np.all(wb > 0) else np.ones(3)))
        xyz = np.asarray(raw.rgb_xyz_matrix[:3], float)
        data = np.array(raw.raw_image_visible, dtype=np.uint16)
        white = float(raw.white_level)
        flip = int(raw.sizes.flip)
        aspect = float(raw.sizes.pixel_aspect)
    make, model = _camera_name(path)
    return RawMosaic(data=data, cfa=cfa, black=black, white=white, wb=wb,
                     xyz_to_camera=xyz if np.any(xyz) else None, make=make, model=model,
                     orientation=_FLIP_TO_EXIF.get(flip, 1), pixel_aspect=aspect, source=path)


def develop(path: Path, colorspace: str = "srgb") -> np.ndarray:
    """Linear float32 RGB (white = 1.0) of a raw file: AHD demosaic, camera WB, no auto-brightening, gamma 1,
    and white = the sensor's white level (LibRaw's `adjust_maximum_thr` off: it would rescale by the brightest
    pixel of each image and break exposure comparisons)."""
    with open_raw(Path(path)) as raw:
        rgb = raw.postprocess(gamma=(1, 1), no_auto_bright=True, use_camera_wb=True, output_bps=16,
                              output_color=_SPACES[colorspace], adjust_maximum_thr=0.0)
    return rgb.astype(np.float32) / np.float32(65535.0)


def develop_mosaic(mosaic: RawMosaic, colorspace: str = "srgb") -> tuple[np.ndarray, list[str]]:
    """Develop a mosaic exactly as `develop` develops a raw file, by writing it as a temporary DNG that
    LibRaw reads back. Value 1.0 = the mosaic's white level. A camera whose colour matrix is unknown is
    developed in camera RGB taken as sRGB (what LibRaw does for such a raw), and a note says so."""
    import tempfile
    from dataclasses import replace

    from pyops.color import rgb_to_xyz
    from pyops.io.dng import write_dng

    notes = []
    if mosaic.xyz_to_camera is None:
        mosaic = replace(mosaic, xyz_to_camera=np.linalg.inv(rgb_to_xyz("srgb")))
        notes.append("camera colour matrix unknown: camera RGB taken as sRGB")
    with tempfile.TemporaryDirectory(prefix="pyops-") as tmp:
        dng = Path(tmp) / "mosaic.dng"
        write_dng(dng, mosaic)
        return develop(dng, colorspace), notes
