"""EXIF carried from an input to its output, through exiv2 (pyexiv2). Sources are only read."""
from __future__ import annotations

import logging
from pathlib import Path

import pyexiv2

log = logging.getLogger(__name__)
pyexiv2.set_log_level(4)  # exiv2 warnings about maker notes of old cameras are noise here

# Tags that describe the scene and the capture; structural tags (sizes, strips, thumbnails) are not copied.
_IMAGE_TAGS = {"Make", "Model", "DateTime", "Artist", "Copyright", "ImageDescription"}
_SKIP_PHOTO = {"PixelXDimension", "PixelYDimension", "MakerNote", "InteroperabilityTag", "ComponentsConfiguration"}


def read_exif(path: Path) -> dict[str, str]:
    """EXIF of any file exiv2 reads (raw formats included); {} if it has none or cannot be read."""
    try:
        with pyexiv2.Image(str(path)) as img:
            return img.read_exif()
    except Exception:  # exiv2 raises plain RuntimeError for unknown formats
        return {}


def capture_exif(path: Path) -> dict[str, str]:
    """The EXIF worth carrying to a derived image."""
    out = {}
    for key, value in read_exif(path).items():
        group, _, name = key.partition(".")[2].partition(".")
        if (group == "Image" and name in _IMAGE_TAGS) or (group == "Photo" and name not in _SKIP_PHOTO) \
                or group == "GPSInfo":
            out[key] = value
    return out


def write_exif(path: Path, exif: dict[str, str], orientation: int = 1) -> str | None:
    """Write `exif` plus Orientation into `path` (a file pyops just made). Returns a warning or None."""
    try:
        with pyexiv2.Image(str(path)) as img:
            img.modify_exif({**exif, "Exif.Image.Orientation": str(orientation)})
    except Exception as err:
        log.warning("EXIF not written to %s: %s", path.name, err)
        return f"EXIF not written: {err}"
    return None
