"""EXIF carried from an input to its output, through exiv2 (pyexiv2). Sources are only read."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pyexiv2
import tifffile

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


def _tifffile_description(value: str) -> bool:
    """True for the ImageDescription tifffile writes about its own array (`{"shape": [...]}`): it describes
    the source's layout, not the scene, and is wrong on any result of another size."""
    return value.lstrip().startswith('{"shape":')


def sane_rational(value: str, den: int = 10) -> str:
    """An EXIF rational such as '730459/250000' as the nearest n/`den` ('29/10'); the text as it is if it is
    not a positive rational."""
    num, _, d = value.partition("/")
    try:
        v = float(num) / float(d or 1)
    except (ValueError, ZeroDivisionError):
        return value
    return f"{round(v * den)}/{den}" if v > 0 else value


def _raw_shooting_data(path: Path, exif: dict[str, str]) -> dict[str, str]:
    """ISO, aperture, focal length and lens as LibRaw decodes them from a raw's maker notes (formats such as
    Canon's CRW keep them there, where exiv2 gives only the maker's own codes): standard EXIF keys."""
    from pyops.io.images import is_raw
    from pyops.io.raw import open_raw

    if not is_raw(path):
        return {}
    try:
        with open_raw(path) as raw:
            other, lens = raw.other, raw.lens
    except ValueError:  # InputError: not a raw LibRaw reads
        return {}
    out = {}
    if other.iso_speed > 0:
        out["Exif.Photo.ISOSpeedRatings"] = str(int(round(other.iso_speed)))
    if other.aperture > 0:
        out["Exif.Photo.FNumber"] = f"{round(other.aperture * 10)}/10"
    if other.focal_length > 0:
        out["Exif.Photo.FocalLength"] = f"{round(other.focal_length * 10)}/10"
    model = lens.model.strip() or _canon_lens(exif.get("Exif.CanonCs.Lens", ""))
    if model:
        out["Exif.Photo.LensModel"] = model
    if lens.make.strip():
        out["Exif.Photo.LensMake"] = lens.make.strip()
    return out


def _canon_lens(value: str) -> str:
    """Canon's CanonCs.Lens ('long short units-per-mm') as '7.1-21.3 mm'; '' if it is not that."""
    try:
        long_, short, units = (int(v) for v in value.split())
    except ValueError:
        return ""
    if units <= 0 or short <= 0:
        return ""
    return f"{short / units:.1f} mm" if long_ == short else f"{short / units:.1f}-{long_ / units:.1f} mm"


def capture_exif(path: Path) -> dict[str, str]:
    """The EXIF worth carrying to a derived image: the scene and capture tags, with ISO, aperture, focal
    length and lens from a raw's maker notes where they are only there."""
    exif = read_exif(path)
    out = {}
    for key, value in exif.items():
        group, _, name = key.partition(".")[2].partition(".")
        if name == "ImageDescription" and _tifffile_description(value):
            continue
        if (group == "Image" and name in _IMAGE_TAGS) or (group == "Photo" and name not in _SKIP_PHOTO) \
                or group == "GPSInfo":
            out[key] = value
    for key, value in _raw_shooting_data(Path(path), exif).items():
        if key == "Exif.Photo.FNumber" or key not in out:
            out[key] = value
    if "Exif.Photo.FNumber" in out:
        out["Exif.Photo.FNumber"] = sane_rational(out["Exif.Photo.FNumber"])
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


def xmp_packet(exif: dict[str, str], xmp: dict[str, str]) -> str:
    """One serialised XMP packet holding `xmp` and `exif` converted to XMP (exif:, tiff:, aux: properties, as
    exiv2 maps them): what a result too large for exiv2 to rewrite carries (pyops.io.stream.Writer)."""
    stub = io.BytesIO()
    tifffile.imwrite(stub, np.zeros((1, 1), np.uint8))
    with pyexiv2.ImageData(stub.getvalue()) as img:
        img.modify_xmp({**pyexiv2.convert_exif_to_xmp(exif), **xmp})
        return img.read_raw_xmp()
