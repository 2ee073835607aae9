"""EXIF carried from an input to its output, through exiv2 (pyexiv2). Sources are only read."""
from __future__ import annotations

import logging
from pathlib import Path

import pyexiv2

log = logging.getLogger(__name__)
pyexiv2.set_log_level(4)  # exiv2 warnings about maker notes of old cameras are noise here
pyexiv2.registerNs("https://pyops.dev/ns/1.0/", "pyops")  # pyops.provenance.NS_URI

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


def read_xmp(path: Path) -> dict[str, str]:
    try:
        with pyexiv2.Image(str(path)) as img:
            return img.read_xmp()
    except Exception:
        return {}


def write_metadata(path: Path, exif: dict[str, str], xmp: dict[str, str], orientation: int = 1) -> str | None:
    """Write `exif` (plus Orientation) and `xmp` into `path`, a file pyops just made. Returns a warning or None."""
    try:
        with pyexiv2.Image(str(path)) as img:
            img.modify_exif({**exif, "Exif.Image.Orientation": str(orientation)})
            img.modify_xmp(xmp)
    except Exception as err:
        log.warning("metadata not written to %s: %s", path.name, err)
        return f"metadata not written: {err}"
    return None
