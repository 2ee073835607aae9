"""Operator `bin`: k×k binning of linear RGB, of luminance, or of the raw Bayer mosaic."""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from pyops.ops import binning
from pyops.registry import ParamError, Params, Result, operator

Mode = Literal["sum", "mean"]
MODE_HELP = "sum: add the pixels (+log2(k²) EV, SNR ×k); mean: average them (same exposure, noise ÷k)"


class BinParams(Params):
    factor: float = Field(2, ge=1, le=16, description="block size k (k×k pixels); a non-integer k > 1 bins "
                          "area-weighted (rgb and luminance only)", json_schema_extra={"unit": "px"})
    mode: Mode = Field("sum", description=MODE_HELP)
    domain: Literal["rgb", "luminance", "bayer"] = Field(
        "rgb", description="rgb: linear RGB; luminance: bin Y and keep each block's colour ratios; bayer: "
        "same-colour sites of the raw mosaic (raw input; writes a DNG)")

    @model_validator(mode="after")
    def _integer_for_bayer(self):
        if self.domain == "bayer" and not float(self.factor).is_integer():
            raise ValueError("the bayer domain needs an integer factor")
        return self


def bin_memory(h: int, w: int, c: int, p: BinParams) -> int:
    """Bytes beyond the input: bayer, the binned mosaic's float copies and the DNG; else the binned image and the
    encoder's copies of it, plus the luminance or the area weights (pyops.memory)."""
    out = h * w / (p.factor * p.factor)
    if p.domain == "bayer":
        return int(6 * h * w + 24 * out)
    return int(24 * out * c + (0 if p.domain == "rgb" and float(p.factor).is_integer() else 8 * h * w))


def _sum_over_white(k: float, ev: float, remedy: str) -> str:
    return (f"summing {k:g}×{k:g} pixels took part of the image above white (+{ev:.2g} EV), where the output "
            f"clips: use {remedy} to keep it")


@operator("bin", "Bin k×k pixels: trade resolution for light (+log2(k²) EV) or for noise", BinParams,
          raw_when={"domain": ("bayer",)}, memory=bin_memory)
def bin_op(image, p: BinParams, progress) -> Result:
    progress(0.0, f"binning {p.domain} {p.factor:g}×{p.factor:g}")
    k = p.factor
    info = {"factor": k, "mode": p.mode, "domain": p.domain, "ev": 2 * math.log2(k) if p.mode == "sum" else 0.0}
    need = 2 * k if p.domain == "bayer" else k  # a Bayer block is 2k×2k sites
    h, w = image.shape[:2]
    if h < need or w < need:
        raise ParamError(f"bin: a {w}×{h} image is too small for factor {k:g} (the {p.domain} domain needs at "
                         f"least {math.ceil(need)}×{math.ceil(need)} px)")
    if p.domain == "bayer":
        mosaic, clipped, scale = binning.bin_bayer(image, int(k), p.mode)
        data = mosaic.linear() / (scale * (1 if p.mode == "sum" else k * k))
        info.update(cfa=mosaic.pattern, input_clipped_fraction=clipped, scale=scale)
        if p.mode == "sum" and k > 1 and np.count_nonzero(mosaic.data >= mosaic.white) > clipped * mosaic.data.size:
            info["notes"] = [_sum_over_white(k, info["ev"], "--mode mean")]
        progress(1.0, "binned")
        return Result(data, info, mosaic=mosaic)
    if not float(k).is_integer():
        out, clipped = binning.bin_fractional(image, k, p.mode)
    elif p.domain == "luminance":
        out, clipped = binning.bin_luminance(image, int(k), p.mode)
    else:
        out, clipped = binning.bin_rgb(image, int(k), p.mode)
    info["input_clipped_fraction"] = clipped  # `clipped_fraction` (the output's) is set by Operator.apply
    if p.mode == "sum" and k > 1 and float(np.max(out, initial=0.0)) >= 1.0:
        info["notes"] = [_sum_over_white(k, info["ev"], "--mode mean, or a float format (tif32)")]
    progress(1.0, "binned")
    return Result(out, info)
