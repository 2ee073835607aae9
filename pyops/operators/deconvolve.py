"""Operator `deconvolve`: Richardson–Lucy (plain or TV-regularised) with a given PSF."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from pyops.color import luminance, luminance_ratio
from pyops.ops.deconv import fft as fftmod
from pyops.ops.deconv import psf as psfmod
from pyops.ops.deconv import tiles
from pyops.ops.deconv.rl import Options
from pyops.registry import ParamError, Params, Result, operator

KERNEL_IN_INFO = 441  # kernels of at most this many values (21×21) are recorded in full in the provenance

PSF_HELP = ("the blur: a PSF library name (a PSF map from psf_estimate's grid varies it across the frame), a file "
            "(.npy, 16-bit PNG/TIFF), or a model: gaussian:sigma=1.6, moffat:fwhm=3,beta=2.5, disk:radius=4, "
            "motion:length=15,angle=30")


class DeconvolveParams(Params):
    psf: Annotated[str, Field(min_length=1, max_length=4096)] | psfmod.Kernel = Field(
        "gaussian:sigma=1.0", description=PSF_HELP, json_schema_extra={"path": True, "suggest": "psf_library"})
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
    def _psf_spec_is_valid(cls, value: str | np.ndarray) -> str | np.ndarray:
        """Model specs are checked here; files and library names only when the job runs (the server first
        checks that a file is under its allowed roots, so validation never reads files)."""
        if isinstance(value, np.ndarray):  # checked by psfmod.as_kernel
            return value
        if psfmod.is_spec(value):
            psfmod.check_spec(value)  # the kernel is built when the job runs
        elif "/" not in value and "." not in value:
            psfmod.check_name(value)
        return value


PSF_PAD = 128  # kernel size assumed for the estimate when the PSF is a file or a library name (not read here)


def _kernel_size(p: DeconvolveParams) -> int:
    """The PSF's side if it is known without reading a file (an array or a model spec), else PSF_PAD."""
    if isinstance(p.psf, np.ndarray):
        return max(p.psf.shape[-2:])
    return max(psfmod.resolve(p.psf).shape[-2:]) if psfmod.is_spec(p.psf) else PSF_PAD


def deconvolve_memory(h: int, w: int, c: int, p: DeconvolveParams, streamed: bool = False) -> int:
    """Bytes beyond the input at the peak (pyops.memory); `streamed`: the input is read and the result written a
    tile at a time (pyops.io.stream), neither held. The iterations hold, for the largest tile
    (pyops.ops.deconv.tiles; the whole image when it fits in one) padded by the kernel's size, per deconvolved
    channel the padded planes (observed, estimate, previous, spare; with acceleration also the extrapolated point
    and two gradients) and 7 shared ones (work plane, TV norm, OTF, spectrum, FFT buffers) and the tile's cut
    (its copy, clipped mask, result); then a band of finished rows and the rows carried to the next. Before them
    the noise model and λ are measured on the image (at most SAMPLE_BANDS × SAMPLE_ROWS rows of it): a copy and
    its masks. An image that fits one tile is deconvolved whole: its copy and masks are held through the run."""
    k = _kernel_size(p)
    th, tw = tiles.extent(h, k), tiles.extent(w, k)
    pad = 2 * max(k, 8)
    padded = fftmod.good_size(th + pad) * fftmod.good_size(tw + pad)
    nc = 1 if p.luminance_only and c >= 3 else c
    planes = 4 * padded * (nc * (7 if p.accelerate else 4) + 7)
    result = 0 if streamed else 4 * h * w * min(c, 3)
    if (th, tw) == (h, w):
        return 10 * h * w * nc + planes + result
    rows = min(h, tiles.SAMPLE_BANDS * tiles.SAMPLE_ROWS)
    sample = 10 * rows * w * nc + (4 * rows * w * c if nc != c else 0)  # with the luminance only, the colour rows
    band = 2 * 4 * th * w * min(c, 3)  # a band of rows (≤ a tile's height), its carry, its writing
    return max(sample, planes + 12 * th * tw * nc + band) + result


def deconvolve_stream(read: tiles.Reader, shape: tuple[int, int, int], write: tiles.Writer, p: DeconvolveParams,
                      progress, pool: tiles.Pool | None = None) -> dict:
    """The operator on an H×W×C image read and written a tile at a time (tiles.stream; its tiles on `pool`'s
    workers if given): its info."""
    kernel = psfmod.resolve(p.psf)
    h, w, c = shape
    if kernel.shape[-2] > h or kernel.shape[-1] > w:
        raise ParamError(f"deconvolve: the PSF ({kernel.shape[-1]}×{kernel.shape[-2]} px) is larger than the image "
                         f"({w}×{h} px); each side of the PSF must be at most the image's")
    opts = Options(method=p.method, iterations=p.iterations, regularization=p.regularization, stop=p.stop,
                   accelerate=p.accelerate, backend=p.fft)
    progress(0.0, "deconvolving")
    if p.luminance_only and c >= 3:
        def read_y(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            return luminance(read(r0, r1, c0, c1))[..., None]

        def write_y(r0: int, y_new: np.ndarray) -> None:  # each pixel's colour scaled to its new luminance
            colour = read(r0, r0 + len(y_new), 0, w)[..., :3]
            write(r0, colour * luminance_ratio(y_new[..., 0], luminance(colour)).astype(np.float32)[..., None])

        info = tiles.stream(read_y, (h, w, 1), kernel, opts, write_y, progress, pool=pool)
    else:
        info = tiles.stream(read, shape, kernel, opts, write, progress, pool=pool)
    info.update(psf=p.model_dump(include={"psf"})["psf"], psf_shape=list(kernel.shape),
                psf_sha256=psfmod.kernel_sha256(kernel), method=p.method)
    if kernel.size <= KERNEL_IN_INFO:  # the kernel itself, so the result can be re-made whatever the library holds
        info["psf_kernel"] = kernel.tolist()
    return info


@operator("deconvolve", "Sharpen a blurred image: Richardson–Lucy deconvolution (TV-regularised) with a known PSF",
          DeconvolveParams, memory=deconvolve_memory, stream=deconvolve_stream)
def deconvolve_op(image, p: DeconvolveParams, progress) -> Result:
    read, shape, write, result = tiles.array_io(image)
    info = deconvolve_stream(read, shape, write, p, progress)
    return Result(result().astype(np.float32, copy=False), info)
