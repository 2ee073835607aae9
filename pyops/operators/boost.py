"""Operator `boost`: exposure and tone changes on luminance, colour ratios kept."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pyops.ops import boost as tone
from pyops.registry import Params, Result, operator

EV = Annotated[float, Field(ge=-tone.EV_LIMIT, le=tone.EV_LIMIT)] | Literal["auto"]
Method = Literal["gain", "auto_gamma", "equalize", "clahe", "power"]
Highlights = Literal["rolloff", "clip"]

EV_HELP = ("exposure change in stops (EV) at middle grey; 'auto' puts the median luminance at 18 % grey. "
           "Used by gain and power")
METHOD_HELP = ("gain: exposure gain 2^EV; power: Y^p lifting the median by EV with white fixed; auto_gamma: "
               "mean lightness to 50 %; equalize: histogram equalisation of lightness; clahe: adaptive "
               "(contrast-limited) equalisation")
HIGHLIGHTS_HELP = ("rolloff: soft shoulder above 80 % that never clips and keeps the hue; clip: hard clip of "
                   "the brightest channel at 100 %, hue kept")


def check_ev(method: str, ev) -> None:
    if method not in ("gain", "power") and ev != "auto":
        raise ValueError(f"ev is used by the gain and power methods only, not by {method} (leave it 'auto')")


class BoostParams(Params):
    ev: EV = Field("auto", description=EV_HELP, json_schema_extra={"unit": "EV"})
    method: Method = Field("gain", description=METHOD_HELP)
    highlights: Highlights = Field("rolloff", description=HIGHLIGHTS_HELP)

    @model_validator(mode="after")
    def _ev_for_method(self):
        check_ev(self.method, self.ev)
        return self


def apply(image, method: str, ev, highlights: str) -> tuple:
    """Run one boost method; returns (image, info)."""
    info: dict = {"method": method, "highlights": highlights}
    if method in ("gain", "power"):
        if ev == "auto":
            ev, why = tone.auto_ev(tone.luminance(tone.sanitize(image)))
            info["ev_reason"] = why
        info["ev"] = round(float(ev), 4)
        if method == "gain":
            out = tone.gain(image, ev, highlights)
        else:
            out, info["exponent"] = tone.power(image, ev, highlights)
    elif method == "auto_gamma":
        out, info["gamma"] = tone.auto_gamma(image, highlights)
    elif method == "equalize":
        out = tone.equalize(image, highlights)
    else:
        out = tone.clahe(image, highlights)
    return out, info


def boost_memory(h: int, w: int, c: int, p: BoostParams) -> int:
    """Bytes beyond the input: luminance, ratios, the shoulder's temporaries, the output and the encoder's
    copies — about twelve float32 planes per channel, whatever the method (pyops.memory)."""
    return 48 * h * w * c


@operator("boost", "Brighten on luminance with colour kept: exposure gain, auto-exposure, auto-gamma, "
          "histogram equalisation, CLAHE, power law", BoostParams, memory=boost_memory)
def boost(image, p: BoostParams, progress) -> Result:
    progress(0.0, f"boost ({p.method})")
    out, info = apply(image, p.method, p.ev, p.highlights)
    progress(1.0, "boost done")
    return Result(out, info)
