"""Operator `deconvolve`: Richardson–Lucy (plain or TV-regularised) with a given PSF."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from pyops.color import luminance, luminance_ratio
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv.rl import Options, deconvolve
from pyops.registry import Params, Result, operator

PSF_HELP = ("the blur: a PSF library name, a file (.npy, 16-bit PNG/TIFF), or a model: gaussian:sigma=1.6, "
            "moffat:fwhm=3,beta=2.5, disk:radius=4, motion:length=15,angle=30")


class DeconvolveParams(Params):
    psf: str = Field("gaussian:sigma=1.0", min_length=1, max_length=4096, description=PSF_HELP,
                     json_schema_extra={"path": True, "suggest": "psf_library"})
    method: Literal["rl_tv", "rl"] = Field("rl_tv", description="rl_tv: Richardson–Lucy with total-variation "
                                           "regularisation (cleaner); rl: plain Richardson–Lucy")
    iterations: int = Field(50, ge=1, le=1000, description="maximum number of iterations")
    regularization: Annotated[float, Field(ge=0, le=0.1)] | Literal["auto"] = Field(
        "auto", description="TV weight λ; 'auto' sets it from the measured noise level")
    stop: Literal["auto", "none"] = Field("auto", description="auto: stop at the noise level, when the residual "
                                          "stalls, or on divergence; none: run every iteration")
    luminance_only: bool = Field(False, description="deconvolve luminance only and keep each pixel's colour ratios")
    accelerate: bool = Field(True, description="Biggs–Andrews vector extrapolation (fewer iterations)")
    fft: Literal["auto", "ducc0", "pyfftw", "scipy"] = Field("auto", description="FFT library (auto: the fastest)")

    @field_validator("psf")
    @classmethod
    def _psf_spec_is_valid(cls, value: str) -> str:
        """Model specs are checked here; files and library names only when the job runs (the server first
        checks that a file is under its allowed roots, so validation never reads files)."""
        if ":" in value and value.split(":", 1)[0] in psfmod.MODELS:
            psfmod.parse_spec(value)
        elif "/" not in value and "." not in value:
            psfmod.check_name(value)
        return value


@operator("deconvolve", "Sharpen a blurred image: Richardson–Lucy deconvolution (TV-regularised) with a known PSF",
          DeconvolveParams)
def deconvolve_op(image, p: DeconvolveParams, progress) -> Result:
    kernel = psfmod.resolve(p.psf)
    opts = Options(method=p.method, iterations=p.iterations, regularization=p.regularization, stop=p.stop,
                   accelerate=p.accelerate, backend=p.fft)
    progress(0.0, "deconvolving")
    if p.luminance_only and image.ndim == 3:
        y = luminance(image)
        y_new, info = deconvolve(y, kernel, opts, progress)
        out = image[..., :3] * luminance_ratio(y_new, y).astype(np.float32)[..., None]
    else:
        out, info = deconvolve(image, kernel, opts, progress)
    info.update(psf=p.psf, psf_shape=list(kernel.shape), method=p.method)
    return Result(out.astype(np.float32), info)
