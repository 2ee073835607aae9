"""Operator `bin`: k×k binning of linear RGB, of luminance, or of the raw Bayer mosaic."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from pyops.ops import binning
from pyops.registry import Params, Result, operator

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


@operator("bin", "Bin k×k pixels: trade resolution for light (+log2(k²) EV) or for noise", BinParams,
          raw_when={"domain": ("bayer",)})
def bin_op(image, p: BinParams, progress) -> Result:
    progress(0.0, f"binning {p.domain} {p.factor:g}×{p.factor:g}")
    k = p.factor
    info = {"factor": k, "mode": p.mode, "domain": p.domain, "ev": 2 * math.log2(k) if p.mode == "sum" else 0.0}
    if p.domain == "bayer":
        mosaic, clipped, scale = binning.bin_bayer(image, int(k), p.mode)
        data = mosaic.linear() / (scale * (1 if p.mode == "sum" else k * k))
        info.update(cfa=mosaic.pattern, clipped_fraction=clipped, scale=scale)
        progress(1.0, "binned")
        return Result(data, info, mosaic=mosaic)
    if not float(k).is_integer():
        out, clipped = binning.bin_fractional(image, k, p.mode)
    elif p.domain == "luminance":
        out, clipped = binning.bin_luminance(image, int(k), p.mode)
    else:
        out, clipped = binning.bin_rgb(image, int(k), p.mode)
    info["clipped_fraction"] = clipped
    progress(1.0, "binned")
    return Result(out, info)
