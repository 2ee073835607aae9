"""Image size from the file header, without decoding the pixels (to refuse oversized inputs early)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rawpy
import tifffile
from PIL import Image as PILImage

from pyops.io.images import NPY_EXT, PIL_EXT, TIFF_EXT


def megapixels(path: Path) -> float | None:
    """Pixel count / 1e6, or None if the header cannot be read (the reader will then say why)."""
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_EXT:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return page.imagelength * page.imagewidth / 1e6
        if suffix in NPY_EXT:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            return shape[0] * shape[1] / 1e6
        if suffix in PIL_EXT:
            with PILImage.open(path) as im:
                return im.width * im.height / 1e6
        with rawpy.imread(str(path)) as raw:
            return raw.sizes.raw_width * raw.sizes.raw_height / 1e6
    except Exception:
        return None
