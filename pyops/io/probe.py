"""Image size from the file header, without decoding the pixels (to refuse oversized inputs early)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rawpy
import tifffile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile

from pyops.io.images import NPY_EXT, TIFF_EXT

# PIL's format plug-ins read the header only, without Image.open's decompression-bomb refusal: a declared
# 60000×60000 PNG must be measured (and refused as too large), not fail the probe
PIL_HEADERS = {".png": PngImageFile, ".jpg": JpegImageFile, ".jpeg": JpegImageFile}


def dimensions(path: Path) -> tuple[int, int, int] | None:
    """(height, width, channels) from the header — a raw's full sensor with 3 channels once developed — or
    None if the header cannot be read (the reader will then say why)."""
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_EXT:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return page.imagelength, page.imagewidth, page.samplesperpixel
        if suffix in NPY_EXT:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            return shape[0], shape[1], shape[2] if len(shape) > 2 else 1
        if suffix in PIL_HEADERS:
            with PIL_HEADERS[suffix](path) as im:
                return im.height, im.width, len(im.getbands())
        with rawpy.imread(str(path)) as raw:
            return raw.sizes.raw_height, raw.sizes.raw_width, 3
    except Exception:
        return None


def megapixels(path: Path) -> float | None:
    """Pixel count / 1e6, or None if the header cannot be read (the reader will then say why)."""
    dims = dimensions(path)
    return None if dims is None else dims[0] * dims[1] / 1e6
