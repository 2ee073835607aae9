"""Operator `twostop`: the whole raw pipeline — decode, bin same-colour sites of the Bayer mosaic, develop
(demosaic, white balance, colour matrix), optional boost — for a true +log2(k²) EV at 1/k the resolution."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from pyops.color import rgb_to_xyz_d50
from pyops.io.raw import develop_mosaic
from pyops.operators.binning import MODE_HELP, Mode
from pyops.operators.boost import EV, EV_HELP, HIGHLIGHTS_HELP, METHOD_HELP, Highlights, Method, apply, check_ev
from pyops.ops import binning
from pyops.registry import Params, Result, operator


class TwoStopParams(Params):
    factor: int = Field(2, ge=1, le=8, description="block size k: k×k same-colour sites per output site",
                        json_schema_extra={"unit": "px"})
    mode: Mode = Field("sum", description=MODE_HELP)
    boost: Literal["none"] | Method = Field("none", description="tone change after binning: none, or a boost "
                                            "method (" + METHOD_HELP + ")")
    ev: EV = Field("auto", description=EV_HELP + " (with boost gain or power)", json_schema_extra={"unit": "EV"})
    highlights: Highlights = Field("rolloff", description=HIGHLIGHTS_HELP)
    colorspace: Literal["srgb", "rec2020"] = Field("srgb", description="primaries of the linear RGB output")

    @model_validator(mode="after")
    def _ev_for_boost(self):
        if self.boost != "none":
            check_ev(self.boost, self.ev)
        elif self.ev != "auto":
            raise ValueError("ev needs boost gain or power")
        return self


def twostop_memory(h: int, w: int, c: int, p: TwoStopParams) -> int:
    """Bytes beyond the mosaic (h×w sensor sites): its binned copy, then per output pixel LibRaw's 16-bit
    development, float RGB, the tone step's temporaries and the encoder's copies (pyops.memory)."""
    return 4 * h * w + 140 * h * w // (p.factor * p.factor)


@operator("twostop", "Raw pipeline: bin the Bayer mosaic (+2 EV for 2×2), develop linearly, optional boost",
          TwoStopParams, raw_when=True, memory=twostop_memory)
def twostop(mosaic, p: TwoStopParams, progress) -> Result:
    k = p.factor
    progress(0.0, f"binning the mosaic {k}×{k}")
    # binned as 'mean' so LibRaw's 16-bit development cannot clip; the sum's gain is applied in float after
    binned, clipped, _ = binning.bin_bayer(mosaic, k, "mean")
    progress(0.3, "developing")
    rgb, notes = develop_mosaic(binned, p.colorspace)
    gain_ev = 2 * math.log2(k) if p.mode == "sum" else 0.0
    rgb *= 2.0 ** gain_ev
    progress(0.8, "tone")
    if p.boost == "none":  # only the highlight shoulder
        out, info = apply(rgb, "gain", 0.0, p.highlights)
        del info["method"], info["ev"]
    else:
        out, info = apply(rgb, p.boost, p.ev, p.highlights)
    info.update(factor=k, mode=p.mode, binning_ev=gain_ev, cfa=mosaic.pattern, input_clipped_fraction=clipped,
                notes=list(mosaic.notes) + notes)
    progress(1.0, "done")
    return Result(out, info, colorants=rgb_to_xyz_d50(p.colorspace))
