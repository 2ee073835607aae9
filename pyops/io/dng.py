"""Write a Bayer mosaic as a DNG (Adobe DNG Specification 1.4, uncompressed CFA), so a binned raw opens as a
raw in LibRaw/rawpy and darktable and is developed like the original: same CFA pattern, per-site black
levels, white level, the camera's colour matrix (ColorMatrix1, D65) and its as-shot white balance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from pyops import __version__
from pyops.mosaic import RawMosaic


class DngError(ValueError):
    """The mosaic lacks what a valid DNG needs (e.g. the camera's colour matrix is unknown)."""


def _rationals(values, den: int = 10000) -> list[int]:
    out: list[int] = []
    for v in np.ravel(values):
        out += [int(round(float(v) * den)), den]
    return out


def write_dng(path: Path, mosaic: RawMosaic) -> None:
    """Write `mosaic` to `path` as a DNG. Raises DngError if the camera's colour data is missing."""
    if mosaic.xyz_to_camera is None:
        raise DngError(f"no colour matrix is known for this camera ({mosaic.make} {mosaic.model}".rstrip()
                       + "): a DNG would develop with wrong colours")
    camera = f"{mosaic.make} {mosaic.model}".strip() or "pyops mosaic"
    neutral = [1.0 / w for w in mosaic.wb]
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, camera, True),  # UniqueCameraModel
        (271, "s", 0, mosaic.make or "pyops", True),
        (272, "s", 0, mosaic.model or camera, True),
        (274, "H", 1, mosaic.orientation, True),
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, tuple(int(c) for c in mosaic.cfa.ravel()), True),  # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50713, "H", 2, (2, 2), True),  # BlackLevelRepeatDim
        (50714, "2I", 4, _rationals(mosaic.black, den=100), True),  # BlackLevel per CFA site
        (50717, "I", 1, int(round(mosaic.white)), True),  # WhiteLevel
        (50718, "2I", 2, _rationals((mosaic.pixel_aspect, 1.0)), True),  # DefaultScale: pixel aspect
        (50721, "2i", 9, _rationals(mosaic.xyz_to_camera), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, _rationals(neutral), True),  # AsShotNeutral
    ]
    tifffile.imwrite(path, np.ascontiguousarray(mosaic.data, np.uint16), photometric=32803, subfiletype=0,
                     extratags=tags, metadata=None, software=f"pyops {__version__}")
