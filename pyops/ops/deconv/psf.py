"""Point-spread functions: parametric models, files, and a named library on disk.

Every PSF here is float32, non-negative, sums to 1, has odd width and height and is centred, in the convolution
convention used everywhere in pyops: blurred = scipy.signal.fftconvolve(sharp, psf, mode="same"). A blur that
varies across the frame is a PSF map: a rows × cols × h × w array, one such kernel per zone of a frame cut into
equal zones (pyops.ops.deconv.psfmap); files, the library and `psf=` take either.

Models: Gaussian (σ); Moffat (FWHM, β; Moffat 1969, A&A 3, 455 — the usual model of atmospheric seeing); disk
(defocus, radius); motion (a straight line of a given length and angle, linear camera shake).
"""
from __future__ import annotations

import inspect
import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import PlainSerializer, PlainValidator
from pydantic.json_schema import SkipJsonSchema

from pyops.registry import ParamError

SUPERSAMPLE = 8
MAX_SIZE = 1001  # largest kernel side, px (also the cap on a model's automatic size)
_MAX_SAMPLES = 1024  # a model is supersampled on at most this many sub-pixels per side
# the range of each model parameter: (low, high, low is exclusive); checked before a kernel is built
LIMITS = {"sigma": (0.0, 100.0, True), "fwhm": (0.0, 200.0, True), "beta": (1.0, 20.0, True),
          "radius": (0.0, 100.0, True), "length": (0.0, 500.0, True), "angle": (-3600.0, 3600.0, False),
          "size": (3, MAX_SIZE, False)}


def normalize(k: np.ndarray) -> np.ndarray:
    """Non-negative, sum 1, odd size (a zero row/column is added where a side is even), float32."""
    k = np.nan_to_num(np.asarray(k, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if k.ndim != 2 or k.size == 0:
        raise ParamError(f"a PSF must be a 2-D array (or a 4-D PSF map), got shape {k.shape}")
    if max(k.shape) > MAX_SIZE:
        raise ParamError(f"a PSF of {k.shape[1]}×{k.shape[0]} px is too large (at most {MAX_SIZE} px a side)")
    k = np.clip(k, 0, None)
    if k.shape[0] % 2 == 0:
        k = np.pad(k, ((0, 1), (0, 0)))
    if k.shape[1] % 2 == 0:
        k = np.pad(k, ((0, 0), (0, 1)))
    total = k.sum()
    if total <= 0:
        raise ParamError("a PSF must have a positive sum")
    return (k / total).astype(np.float32)


MAX_GRID = 8  # zones along a side of a PSF map


def centred(k: np.ndarray) -> np.ndarray:
    """The kernel moved (cubic interpolation, no wrap-around) so its centroid is on its centre pixel."""
    from scipy import ndimage

    k = normalize(k).astype(np.float64)
    cy, cx = ndimage.center_of_mass(k)
    moved = ndimage.shift(k, ((k.shape[0] - 1) / 2 - cy, (k.shape[1] - 1) / 2 - cx), order=3, mode="constant")
    return normalize(np.clip(moved, 0, None))


def normalize_any(k: np.ndarray) -> np.ndarray:
    """A kernel (2-D, `normalize`) or a PSF map (4-D: rows × cols × h × w, `as_map` of its zones)."""
    k = np.asarray(k)
    if k.ndim != 4:
        return normalize(k)
    return as_map(list(k.reshape(-1, *k.shape[2:])), k.shape[0], k.shape[1])


def as_map(kernels: list[np.ndarray], rows: int, cols: int, margin: int = 0) -> np.ndarray:
    """A PSF map from its zones' kernels (row by row, any sizes): each normalised, given `margin` px of room on
    every side, moved onto its centroid (zones offset differently would shift the image differently from zone to
    zone) and placed in one odd size, the largest."""
    if not (1 <= rows <= MAX_GRID and 1 <= cols <= MAX_GRID):
        raise ParamError(f"a PSF map has 1 to {MAX_GRID} zones a side, got {cols}×{rows}")
    zones = [centred(np.pad(normalize(z), margin)) for z in kernels]
    h, w = (max(z.shape[i] for z in zones) for i in (0, 1))
    out = np.zeros((len(zones), h, w), np.float32)
    for n, z in enumerate(zones):
        y, x = (h - z.shape[0]) // 2, (w - z.shape[1]) // 2
        out[n, y:y + z.shape[0], x:x + z.shape[1]] = z
    return out.reshape(rows, cols, h, w)


def as_kernel(value: Any) -> np.ndarray:
    """A PSF passed as a NumPy array (the Python API, like scikit-image's `psf=`): 2-D (or a 4-D PSF map), finite,
    non-negative somewhere; normalised as every PSF is."""
    if not isinstance(value, np.ndarray):
        raise ValueError("a PSF must be a spec, a file, a library name or a 2-D NumPy array")
    if value.ndim in (2, 4) and not np.isfinite(value).all():
        raise ValueError("a PSF array must be finite (no NaN or inf)")
    try:
        return normalize_any(value)
    except ParamError as err:
        raise ValueError(str(err)) from None


def describe(kernel: np.ndarray) -> str:
    """A kernel's size ('21×21 px'), or a map's zones and size ('PSF map 3×2 zones of 21×21 px')."""
    size = f"{kernel.shape[-1]}×{kernel.shape[-2]} px"
    return f"PSF map {kernel.shape[1]}×{kernel.shape[0]} zones of {size}" if kernel.ndim == 4 else size


def kernel_label(kernel: np.ndarray) -> str:
    """How a PSF given as an array is recorded (provenance, info): its size and content hash."""
    what = describe(kernel).replace(" px", "")
    return f"array {what} sha256:{kernel_sha256(kernel)[:16]}"


# a parameter type for Python callers only: validated by as_kernel, recorded as its label, absent from the
# JSON schema (the CLI, the server and the plug-ins take text)
Kernel = SkipJsonSchema[Annotated[np.ndarray, PlainValidator(as_kernel), PlainSerializer(kernel_label, return_type=str)]]


def _supersample(size: int) -> int:
    """Sub-pixels per pixel side: SUPERSAMPLE for small kernels, fewer for large ones (time and memory stay
    bounded; a large kernel varies slowly across a pixel)."""
    return max(1, min(SUPERSAMPLE, _MAX_SAMPLES // size))


def _radius_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample coordinates (y, x) of a size×size kernel centred on 0, `_supersample(size)`² per
    pixel (as 1-D arrays that broadcast to the grid)."""
    ss = _supersample(size)
    c = (np.arange(size * ss) + 0.5) / ss - size / 2
    return c[:, None], c[None, :]


def _bin(fine: np.ndarray, size: int) -> np.ndarray:
    ss = _supersample(size)
    return fine.reshape(size, ss, size, ss).sum(axis=(1, 3))


def _odd(r: float) -> int:
    """The odd size that holds radius `r`, at most MAX_SIZE."""
    return min(2 * int(math.ceil(r)) + 1, MAX_SIZE)


def gaussian(sigma: float, size: int | None = None) -> np.ndarray:
    if sigma <= 0:
        raise ValueError("gaussian: sigma must be > 0")
    size = size or _odd(3.5 * sigma)
    y, x = _radius_grid(size)
    return normalize(_bin(np.exp(-(x * x + y * y) / (2 * sigma * sigma)), size))


def moffat(fwhm: float, beta: float = 2.5, size: int | None = None) -> np.ndarray:
    """I(r) = (1 + r²/α²)^-β with α = FWHM / (2·sqrt(2^(1/β) − 1))."""
    if fwhm <= 0 or beta <= 1:
        raise ValueError("moffat: fwhm must be > 0 and beta > 1")
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    size = size or _odd(min(alpha * math.sqrt(1e-3 ** (-1 / beta) - 1), 50 * fwhm))
    y, x = _radius_grid(size)
    return normalize(_bin((1 + (x * x + y * y) / alpha**2) ** -beta, size))


def disk(radius: float, size: int | None = None) -> np.ndarray:
    """Uniform disk (defocus), anti-aliased by supersampling."""
    if radius <= 0:
        raise ValueError("disk: radius must be > 0")
    size = size or _odd(radius + 0.5)
    y, x = _radius_grid(size)
    return normalize(_bin((x * x + y * y <= radius * radius).astype(float), size))


def motion(length: float, angle: float = 0.0, size: int | None = None) -> np.ndarray:
    """Uniform straight motion of `length` px at `angle` degrees (counter-clockwise from +x, y up), centred;
    drawn as many sub-pixel points splatted bilinearly."""
    if length <= 0:
        raise ValueError("motion: length must be > 0")
    size = size or _odd(length / 2 + 1)
    t = np.linspace(-length / 2, length / 2, max(int(length * SUPERSAMPLE), 2))
    a = math.radians(angle)
    xs, ys = size // 2 + t * math.cos(a), size // 2 - t * math.sin(a)
    k = np.zeros((size, size))
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        np.add.at(k, (yy[ok], xx[ok]), w[ok])
    return normalize(k)


MODELS = {"gaussian": gaussian, "moffat": moffat, "disk": disk, "motion": motion}


def check_spec(spec: str) -> tuple[str, dict[str, float]]:
    """Parse and range-check a model spec without building the kernel: (model, parameters). Raises a
    one-line ParamError for an unknown model, a malformed or unknown parameter, or one out of its range."""
    m = re.fullmatch(r"\s*(\w+)\s*:\s*(.*)", spec)
    if not m or m.group(1) not in MODELS:
        raise ParamError(f"not a PSF spec: {spec!r} (models: {', '.join(MODELS)}, e.g. gaussian:sigma=1.6)")
    model = m.group(1)
    accepted = [n for n in inspect.signature(MODELS[model]).parameters]
    kwargs: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        key, _, value = (t.strip() for t in part.partition("="))
        if key not in accepted:
            raise ParamError(f"PSF spec {spec!r}: {model} has no parameter {key!r} (it takes {', '.join(accepted)})")
        try:
            kwargs[key] = float(value)
        except ValueError:
            raise ParamError(f"PSF spec {spec!r}: {part!r} is not name=number") from None
        low, high, open_low = LIMITS[key]
        v = kwargs[key]
        if not (math.isfinite(v) and (v > low if open_low else v >= low) and v <= high):
            raise ParamError(f"PSF spec {spec!r}: {key} must be in {'(' if open_low else '['}{low:g}, {high:g}]")
    if "size" in kwargs:
        if not kwargs["size"].is_integer() or kwargs["size"] % 2 == 0:
            raise ParamError(f"PSF spec {spec!r}: size must be an odd whole number of pixels")
        kwargs["size"] = int(kwargs["size"])
    missing = [n for n, par in inspect.signature(MODELS[model]).parameters.items()
               if par.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise ParamError(f"PSF spec {spec!r}: {model} needs {', '.join(missing)}")
    return model, kwargs


def parse_spec(spec: str) -> np.ndarray:
    """`gaussian:sigma=1.6`, `moffat:fwhm=3,beta=2.5`, `disk:radius=4`, `motion:length=15,angle=30`, each
    with an optional odd `size`; the parameters are checked (`check_spec`) before the kernel is built."""
    model, kwargs = check_spec(spec)
    return MODELS[model](**kwargs)


def load_file(path: Path) -> np.ndarray:
    """A PSF from .npy (a kernel or a 4-D PSF map), or a 16/8-bit grey PNG/TIFF (values taken as they are, then
    normalised)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            import imagecodecs

            arr = imagecodecs.imread(path)
            arr = arr[..., :3].mean(axis=-1) if arr.ndim == 3 else arr
    except Exception as err:  # numpy and imagecodecs raise many types for broken files
        raise ParamError(f"PSF file {path}: cannot read it ({err})".splitlines()[0]) from None
    return normalize_any(np.asarray(arr, np.float64))


# the library -----------------------------------------------------------------------------------------------


def library_dir() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    d = base / "pyops" / "psf"
    d.mkdir(parents=True, exist_ok=True)
    return d


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ParamError(f"PSF name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def _name_for(name: str, n: int) -> str:
    return name if n == 0 else f"{name[:60]}_{n:02d}"


def save(name: str, kernel: np.ndarray, record: dict[str, Any], replace: bool = False) -> str:
    """Store `kernel` (or a PSF map) as <library>/<name>.npy with <name>.json (how it was made) and return the
    name used. An existing PSF is never replaced unless `replace`: the kernel goes under the first free `name_01`,
    `name_02`, … (claimed by a hard link, so two savers never take the same name)."""
    import tempfile

    from pyops.io.files import _publish

    check_name(name)
    d = library_dir()
    k = normalize_any(kernel)

    def publish(suffix: str, write, final) -> str:
        """Write a hidden temp file and give it its final name (`final(tmp)`); nothing is left on failure."""
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{name}", suffix=suffix)
        os.close(fd)
        try:
            write(Path(tmp))
            return final(Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def claim(tmp: Path) -> str:
        if replace:
            os.replace(tmp, d / f"{name}.npy")  # a reader sees the old PSF or the new one, never half of one
            return name
        return _publish(tmp, d, lambda n: _name_for(name, n) + ".npy").stem

    used = publish(".npy", lambda p: np.save(p, k), claim)
    meta = dict(record, name=used, shape=list(k.shape), sha256=kernel_sha256(k),
                saved=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    publish(".json", lambda p: p.write_text(json.dumps(meta, indent=1, default=str)),
            lambda tmp: os.replace(tmp, d / f"{used}.json"))
    return used


def delete(name: str) -> None:
    """Remove the library's PSF `name` (its kernel and its record); ParamError if there is none."""
    d = library_dir()
    try:
        (d / f"{check_name(name)}.npy").unlink()
    except FileNotFoundError:
        raise ParamError(f"no PSF named {name!r} in the library ({d})") from None
    (d / f"{name}.json").unlink(missing_ok=True)


def kernel_sha256(kernel: np.ndarray) -> str:
    """sha256 of the kernel as the library stores it (C-ordered float32 values): identifies it exactly."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(kernel, np.float32).tobytes()).hexdigest()


def record(name: str) -> dict[str, Any]:
    """How the library's PSF `name` was made (its JSON record; {} if it has none), without loading the kernel."""
    meta_path = library_dir() / f"{check_name(name)}.json"
    return json.loads(meta_path.read_text()) if meta_path.exists() else {}


def load(name: str) -> tuple[np.ndarray, dict[str, Any]]:
    d = library_dir()
    path = d / f"{check_name(name)}.npy"
    if not path.exists():
        raise ParamError(f"no PSF named {name!r} in the library ({d}; `pyops psf list` shows what is there)")
    return normalize_any(np.load(path, allow_pickle=False)), record(name)


def names() -> list[str]:
    return sorted(p.stem for p in library_dir().glob("*.npy"))


def is_spec(psf: str) -> bool:
    """Whether `psf` is meant as a model spec (`gaussian:…`)."""
    return ":" in psf and psf.split(":", 1)[0] in MODELS


def names_a_file(psf: str) -> bool:
    """Whether `resolve` reads `psf` as a file: not a spec, and a path separator or a PSF file suffix."""
    return not is_spec(psf) and (os.sep in psf or Path(psf).suffix.lower() in (".npy", ".png", ".tif", ".tiff"))


def resolve(psf: str | np.ndarray) -> np.ndarray:
    """A PSF (a kernel or a map) from an array, a spec (`gaussian:sigma=1.6`), a file path, or a library name — in
    that order."""
    if isinstance(psf, np.ndarray):
        return as_kernel(psf)
    if is_spec(psf):
        return parse_spec(psf)
    if names_a_file(psf):
        path = Path(psf).expanduser()
        if not path.is_file():
            raise ParamError(f"PSF file not found: {psf}")
        return load_file(path)
    return load(psf)[0]
