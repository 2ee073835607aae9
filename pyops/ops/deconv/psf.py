"""Point-spread functions: parametric models, files, and a named library on disk.

Every PSF here is float32, non-negative, sums to 1, has odd width and height and is centred, in the convolution
convention used everywhere in pyops: blurred = scipy.signal.fftconvolve(sharp, psf, mode="same").

Models: Gaussian (σ); Moffat (FWHM, β; Moffat 1969, A&A 3, 455 — the usual model of atmospheric seeing); disk
(defocus, radius); motion (a straight line of a given length and angle, linear camera shake).
"""
from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

SUPERSAMPLE = 8


def normalize(k: np.ndarray) -> np.ndarray:
    """Non-negative, sum 1, odd size (a zero row/column is added where a side is even), float32."""
    k = np.nan_to_num(np.asarray(k, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"a PSF must be a 2-D array, got shape {k.shape}")
    k = np.clip(k, 0, None)
    if k.shape[0] % 2 == 0:
        k = np.pad(k, ((0, 1), (0, 0)))
    if k.shape[1] % 2 == 0:
        k = np.pad(k, ((0, 0), (0, 1)))
    total = k.sum()
    if total <= 0:
        raise ValueError("a PSF must have a positive sum")
    return (k / total).astype(np.float32)


def _radius_grid(size: int, supersample: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample coordinates (y, x) of a size×size kernel centred on 0, supersample² per pixel."""
    n = size * supersample
    c = (np.arange(n) + 0.5) / supersample - size / 2
    return np.meshgrid(c, c, indexing="ij")


def _bin(fine: np.ndarray, size: int, supersample: int = SUPERSAMPLE) -> np.ndarray:
    return fine.reshape(size, supersample, size, supersample).sum(axis=(1, 3))


def _odd(r: float) -> int:
    return 2 * int(math.ceil(r)) + 1


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


def parse_spec(spec: str) -> np.ndarray:
    """`gaussian:sigma=1.6`, `moffat:fwhm=3,beta=2.5`, `disk:radius=4`, `motion:length=15,angle=30`."""
    m = re.fullmatch(r"\s*(\w+)\s*:\s*(.*)", spec)
    if not m or m.group(1) not in MODELS:
        raise ValueError(f"not a PSF spec: {spec!r} (models: {', '.join(MODELS)}, e.g. gaussian:sigma=1.6)")
    kwargs: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        key, _, value = part.partition("=")
        try:
            kwargs[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"PSF spec {spec!r}: {part!r} is not name=number") from None
    if "size" in kwargs:
        kwargs["size"] = int(kwargs["size"]) | 1
    try:
        return MODELS[m.group(1)](**kwargs)
    except TypeError as err:
        raise ValueError(f"PSF spec {spec!r}: {err}") from None


def load_file(path: Path) -> np.ndarray:
    """A PSF from .npy, or a 16/8-bit grey PNG/TIFF (values taken as they are, then normalised)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return normalize(np.load(path, allow_pickle=False))
    import imagecodecs

    arr = imagecodecs.imread(path)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    return normalize(arr.astype(np.float64))


# the library -----------------------------------------------------------------------------------------------


def library_dir() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    d = base / "pyops" / "psf"
    d.mkdir(parents=True, exist_ok=True)
    return d


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"PSF name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def save(name: str, kernel: np.ndarray, record: dict[str, Any]) -> Path:
    """Store `kernel` as <library>/<name>.npy with <name>.json (how it was made). Replaces a PSF of that name."""
    import tempfile

    check_name(name)
    d = library_dir()
    k = normalize(kernel)
    meta = dict(record, name=name, shape=list(k.shape), saved=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    for suffix, write in ((".npy", lambda p: np.save(p, k)),
                          (".json", lambda p: p.write_text(json.dumps(meta, indent=1, default=str)))):
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{name}", suffix=suffix)
        os.close(fd)
        write(Path(tmp))
        os.replace(tmp, d / f"{name}{suffix}")  # a reader sees the old PSF or the new one, never half of one
    return d / f"{name}.npy"


def record(name: str) -> dict[str, Any]:
    """How the library's PSF `name` was made (its JSON record; {} if it has none), without loading the kernel."""
    meta_path = library_dir() / f"{check_name(name)}.json"
    return json.loads(meta_path.read_text()) if meta_path.exists() else {}


def load(name: str) -> tuple[np.ndarray, dict[str, Any]]:
    d = library_dir()
    path = d / f"{check_name(name)}.npy"
    if not path.exists():
        raise ValueError(f"no PSF named {name!r} in the library ({d})")
    return normalize(np.load(path, allow_pickle=False)), record(name)


def names() -> list[str]:
    return sorted(p.stem for p in library_dir().glob("*.npy"))


def resolve(psf: str) -> np.ndarray:
    """A PSF from a spec (`gaussian:sigma=1.6`), a file path, or a library name — in that order."""
    if ":" in psf and psf.split(":", 1)[0] in MODELS:
        return parse_spec(psf)
    if os.sep in psf or Path(psf).suffix.lower() in (".npy", ".png", ".tif", ".tiff"):
        path = Path(psf).expanduser()
        if not path.is_file():
            raise ValueError(f"PSF file not found: {psf}")
        return load_file(path)
    return load(psf)[0]
