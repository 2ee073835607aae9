"""Operator `psf_estimate`: the blur kernel of a photo, measured blind on a region with sharp-edged detail, or
on the stars of an astro frame; with a grid, one kernel per zone of the frame — a PSF map (psfmap) for a blur that
varies across it."""
from __future__ import annotations

import math
import re
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from pyops.color import luminance
from pyops.ops.deconv import blind, psfmap, stars
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv import region as region_mod
from pyops.registry import ParamError, Params, Result, operator

AUTO_SIZE = 31
AUTO_REGION = 512
# a larger blind region is measured on its most detailed window of this many pixels: its time and memory grow with
# the area, its kernel hardly improves (1536×1024 mosaics, 15–27 px shakes, medium noise: mean correlation 0.90 for
# the whole region in 15 s, 0.88 for the most detailed 512² window in 3.5 s; 3072×2048: 0.886 in 62 s for the
# whole, 0.880 in 23 s for this window)
MAX_BLIND_PIXELS = 1 << 21
MIN_REGION = 64  # px a side: less holds too few edges to measure a blur
_REGION = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*")


def parse_region(text: str) -> tuple[int, int, int, int] | None:
    """'x,y,w,h' → (x, y, w, h); 'auto' → None."""
    if text == "auto":
        return None
    m = _REGION.fullmatch(text)
    if not m:
        raise ValueError("region must be 'auto' or x,y,w,h in image pixels, e.g. 800,1000,512,512")
    x, y, w, h = (int(v) for v in m.groups())
    if w < MIN_REGION or h < MIN_REGION:
        raise ValueError(f"region {w}×{h} is too small: choose at least {MIN_REGION}×{MIN_REGION} px (256–512 px "
                         "works best)")
    return x, y, w, h


class PsfEstimateParams(Params):
    method: Literal["blind", "stars"] = Field("blind", description="blind: from any sharp-edged detail (camera "
                                              "shake, defocus); stars: median of the isolated unsaturated stars")
    region: str = Field("auto", max_length=64, description="x,y,w,h (image pixels) of a detail with sharp edges "
                        "in the blurred photo, or of a star field; auto: the 512×512 window with the most edges "
                        "above the noise, away from clipped highlights and the frame's border (stars: the whole "
                        "frame)")
    size: Annotated[int, Field(ge=3, le=101)] | Literal["auto"] = Field(
        "auto", description="largest blur to look for (odd, px); auto: 31 px, cropped to the kernel found",
        json_schema_extra={"unit": "px"})
    grid: str = Field("1x1", max_length=8, description="COLUMNSxROWS zones, e.g. 3x3: measure the PSF in each zone "
                      "(region auto) and save a PSF map that deconvolve interpolates across the frame — for "
                      "corners softer than the centre, coma, or a rotating shake")
    name: str = Field("", max_length=64, description="save the PSF in the library under this name "
                      "(files: the photo's name when empty)")
    replace: bool = Field(False, description="replace a library PSF of that name (otherwise it is kept and the "
                          "new one saved as name_01, name_02, …)")

    @field_validator("region", mode="before")
    @classmethod
    def _region_tuple(cls, value):
        """The Python API also takes (x, y, w, h) as a tuple, a list or an array of four integers."""
        if isinstance(value, (tuple, list, np.ndarray)):
            if len(value) != 4 or not all(float(v).is_integer() for v in value):
                raise ValueError("region must be 'auto' or (x, y, w, h): four integers in image pixels")
            return ",".join(str(int(v)) for v in value)
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        parse_region(value)
        return value

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: str) -> str:
        rows, cols = psfmap.parse_grid(value)
        return f"{cols}x{rows}"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return psfmod.check_name(value) if value else value


def library_name(stem: str) -> str:
    """A valid PSF library name made from a file name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-")[:60]
    return name or "psf"


def psf_estimate_memory(h: int, w: int, c: int, p: PsfEstimateParams) -> int:
    """Bytes beyond the input: the luminance plane, the automatic region search over the frame, and per pixel
    of the region the multi-scale spectra of the blind search (or the star finder's planes on the whole frame)
    (pyops.memory)."""
    region = parse_region(p.region)
    area = region[2] * region[3] if region else (h * w if p.method == "stars" else AUTO_REGION * AUTO_REGION)
    search = 32 * h * w if region is None and p.method == "blind" else 0  # pyops.ops.deconv.region's planes
    return 4 * h * w + (64 if p.method == "stars" else 400) * min(area, h * w) + search


@operator("psf_estimate", "Measure the blur (PSF) of a photo blind, on a region with sharp edges, and save it "
          "in the PSF library for deconvolve", PsfEstimateParams, output="psf", memory=psf_estimate_memory)
def psf_estimate_op(image, p: PsfEstimateParams, progress) -> Result:
    gray = luminance(image) if image.ndim == 3 else np.asarray(image, np.float32)
    h, w = gray.shape
    rows, cols = psfmap.parse_grid(p.grid)
    if rows * cols == 1:
        psf, info = _measure(image, gray, parse_region(p.region), p, progress)
    else:
        if p.region != "auto":
            raise ParamError("psf_estimate: with a grid every zone is measured where it has the most detail; "
                             "leave region at auto")
        kernels, measured = [], []
        boxes = psfmap.zones(h, w, rows, cols)
        for n, (x, y, zw, zh) in enumerate(boxes):
            def part(f: float, msg: str, n: int = n) -> None:
                progress((n + f) / len(boxes), f"zone {n + 1} of {len(boxes)}: {msg}")

            if min(zw, zh) < MIN_REGION:
                raise ParamError(f"psf_estimate: a {p.grid} grid cuts this {w}×{h} image into {zw}×{zh} px zones, "
                                 f"too small to measure a blur (at least {MIN_REGION}×{MIN_REGION} px): use fewer "
                                 "zones")
            try:
                k, zone_info = _measure(image[y:y + zh, x:x + zw], gray[y:y + zh, x:x + zw], None, p, part)
            except ValueError as err:
                raise ParamError(f"psf_estimate: zone {n + 1} of {len(boxes)} (x {x}, y {y}, {zw}×{zh} px): "
                                 f"{err}") from None
            rx, ry, rw, rh = zone_info["region"]
            zone_info.update(zone=[x, y, zw, zh], region=[rx + x, ry + y, rw, rh])
            kernels.append(k)
            measured.append(zone_info)
        psf = psfmod.as_map(kernels, rows, cols, margin=2)  # room to move each onto its centroid
        info = {"grid": [cols, rows], "zones": measured, "size": list(psf.shape[-2:])}
    if p.name:
        info["saved_as"] = psfmod.save(p.name, psf, {"made_by": f"psf_estimate ({p.method})", "grid": p.grid,
                                                     **({"zones": info["zones"]} if "zones" in info else
                                                        {"region": info["region"]})}, p.replace)
    return Result(psf.astype(np.float32), info)


def _measure(image, gray: np.ndarray, region: tuple[int, int, int, int] | None, p: PsfEstimateParams,
             progress) -> tuple[np.ndarray, dict]:
    """One kernel, measured on `region` of the image (None: the frame for stars, its most detailed window for
    the blind method) and its info."""
    h, w = gray.shape
    region = region or ((0, 0, w, h) if p.method == "stars" else region_mod.detail_region(image, AUTO_REGION))
    x, y, rw, rh = region
    if x + rw > w or y + rh > h:
        raise ParamError(f"psf_estimate: region {x},{y},{rw},{rh} is outside the {w}×{h} image")
    if rw < MIN_REGION or rh < MIN_REGION:
        raise ParamError(f"psf_estimate: a {rw}×{rh} px region is too small to measure a blur (at least "
                         f"{MIN_REGION}×{MIN_REGION} px; 256–512 px works best)")
    notes = []
    if p.method == "blind" and rw * rh > MAX_BLIND_PIXELS:
        wx, wy, ww, wh = region_mod.detail_region(image[y: y + rh, x: x + rw], math.isqrt(MAX_BLIND_PIXELS))
        notes.append(f"the {rw}×{rh} px region was measured on its most detailed {ww}×{wh} px window "
                     f"({x + wx},{y + wy},{ww},{wh}): a larger one costs time and memory for a kernel hardly better")
        x, y, rw, rh = x + wx, y + wy, ww, wh
    crop = gray[y: y + rh, x: x + rw]
    if p.method == "stars":
        psf, info = stars.measure(crop, None if p.size == "auto" else p.size | 1)
    else:
        size = AUTO_SIZE if p.size == "auto" else p.size | 1
        psf, info = blind.estimate(crop, min(size, (min(rw, rh) // 3) | 1), progress)
        if p.size == "auto":
            psf = blind.crop_to_support(psf)
    info.update(region=[x, y, rw, rh], size=list(psf.shape))
    if notes:
        info["notes"] = notes + info.get("notes", [])
    return psf, info
