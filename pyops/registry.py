"""The one registry of operators. Each operator is declared once — name, summary, a pydantic model of its
parameters (type, range, default, unit, help) and a function — and the CLI, the server schema, the darktable
script and the GIMP plug-in are all built from it."""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from pyops.mosaic import RawMosaic

Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised by a progress callback to stop an operator."""


class ParamError(ValueError):
    """Parameters that do not fit an operator's model; the message is one readable line."""


class Params(BaseModel):
    """Base of every operator's parameter model: unknown names are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


@dataclass
class Result:
    """What an operator returns: the output array, what it decided or measured (`info`), and for raw-domain
    operators the output mosaic that is written as a DNG."""

    data: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    mosaic: RawMosaic | None = None
    colorants: np.ndarray | None = None  # RGB space of `data` when the operator chose it (3×3 D50 XYZ)


@dataclass(frozen=True)
class Operator:
    name: str
    summary: str
    params: type[Params]
    func: Callable[[Any, Params, Progress], Result]
    raw_when: bool | dict[str, tuple] = False  # works on the raw file: always, or when a parameter has one of these values
    output: str = "image"  # "image", or "psf": a blur kernel (saved in the PSF library; its preview is the file)
    # bytes the operator needs beyond its decoded input, for an input of (height, width, channels): pyops.memory;
    # an operator with `stream` takes `streamed=True` for what it needs when it streams
    memory: Callable[..., int] | None = None
    # works on an image read and written a tile at a time: stream(read, (H, W, C), write, params, progress) → info,
    # with read(r0, r1, c0, c1) → linear float32 pixels and write(r0, rows) taking finished H×W×C rows
    # (pyops.ops.deconv.tiles); pyops.process streams large TIFFs through it
    stream: Callable[..., dict] | None = None

    def wants_raw(self, p: Params) -> bool:
        if isinstance(self.raw_when, bool):
            return self.raw_when
        return any(getattr(p, name) in values for name, values in self.raw_when.items())

    def parse(self, values: dict[str, Any]) -> Params:
        """Validate raw values (strings from a command line are fine) into the parameter model."""
        try:
            return self.params(**values)
        except ValidationError as err:
            raise ParamError(f"{self.name}: " + "; ".join(_error_lines(err))) from None

    def describe(self) -> list[dict[str, Any]]:
        """Each parameter as a plain dict: name, type, choices, minimum, maximum, default, unit, help."""
        return [describe_field(name, f) for name, f in self.params.model_fields.items()]

    def apply(self, image: Any, p: Params, progress: Progress) -> Result:
        """Run the operator on a prepared input with the checks every operator shares: non-finite pixels are
        filled from their neighbours first (and a note says how many), and `clipped_fraction` reports what
        the output clipped. Both `execute` (arrays) and `process_file` (files) come through here."""
        from pyops.ops.finite import NoFiniteData, fill_nonfinite

        filled = 0
        if isinstance(image, np.ndarray) and image.dtype.kind == "f":
            try:
                image, filled = fill_nonfinite(image)
            except NoFiniteData as err:
                raise ParamError(f"{self.name}: {err}") from None
        res = self.func(image, p, progress)
        notes = list(res.info.get("notes", []))
        if filled:
            notes.insert(0, f"{filled} non-finite pixel value(s) (NaN/inf) treated as missing and filled from "
                            "their nearest finite neighbours")
        if self.output == "image":
            note_clipping(res.info, notes, output_clipping(res))
        res.info["notes"] = notes
        return res


def note_clipping(info: dict[str, Any], notes: list[str], clipped: float) -> None:
    """Record the fraction of output pixels at or above white in `info`, and a note if there are any."""
    info["clipped_fraction"] = clipped
    if clipped > 0:
        notes.append(f"{clipped:.2%} of the output pixels are at or above white (clipped in an integer file or a DNG)")


def output_clipping(res: Result) -> float:
    """Fraction of output pixels at or above white: a channel ≥ 1.0, or for a raw mosaic a site at or above
    its white level."""
    if res.mosaic is not None:
        return float(np.count_nonzero(res.mosaic.data >= res.mosaic.white)) / max(res.mosaic.data.size, 1)
    data = res.data.max(axis=-1) if res.data.ndim == 3 else res.data
    return float(np.count_nonzero(data >= 1.0)) / max(data.size, 1)


def _error_lines(err: ValidationError) -> list[str]:
    """One phrase per offending parameter; the alternatives of a union are joined with 'or'."""
    by_field: dict[str, list[str]] = {}
    for e in err.errors():
        name = str(e["loc"][0]) if e.get("loc") else ""
        if e.get("type") == "extra_forbidden":
            by_field.setdefault(name, []).append("unknown parameter")
            continue
        array = isinstance(e.get("input"), np.ndarray)
        if array and e.get("type") == "string_type":  # an array is checked by its own alternative
            continue
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        msg = msg[0].lower() + msg[1:] if msg[1:2].islower() else msg  # not 'pSF'
        if msg not in by_field.setdefault(name, []):
            by_field[name].append(msg)
        if array:
            by_field[name].append(f"(got an array of shape {e['input'].shape})")
        elif "input" in e and not isinstance(e["input"], dict):
            by_field[name].append(f"(got {e['input']!r})")
    lines = []
    for name, msgs in by_field.items():
        got = [m for m in msgs if m.startswith("(got")]
        text = " or ".join(m for m in msgs if not m.startswith("(got")) + (" " + got[0] if got else "")
        lines.append(f"{name}: {text}" if name else text)
    return lines


def _bounds(metadata) -> dict[str, Any]:
    """minimum/maximum (and exclusive ones) from pydantic's annotated-types constraints."""
    out = {}
    for m in metadata:
        for attr, key in (("ge", "minimum"), ("gt", "exclusive_minimum"), ("le", "maximum"), ("lt", "exclusive_maximum")):
            if getattr(m, attr, None) is not None:
                out[key] = getattr(m, attr)
    return out


def describe_field(name: str, f) -> dict[str, Any]:
    extra = f.json_schema_extra or {}
    out: dict[str, Any] = {"name": name, "default": f.default, "help": f.description or "", "unit": extra.get("unit", "")}
    if "suggest" in extra:  # where a front end finds values to offer (e.g. "psf_library"); any text is allowed
        out["suggest"] = extra["suggest"]
    out.update(_type_facts(f.annotation))
    out.update(_bounds(f.metadata))
    return out


def _type_facts(ann) -> dict[str, Any]:
    """Reduce an annotation to {'type': 'int'|'float'|'bool'|'choice'|'str', 'choices': [...], 'special': [...]}"""
    args = typing.get_args(ann)
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return {"type": "choice", "choices": list(args)}
    if origin in (typing.Union, types.UnionType):
        described = tuple(a for a in args if not _python_only(a))
        if len(described) == 1:
            return _type_facts(described[0])
        args = described
        if all(typing.get_origin(a) is typing.Literal for a in args):
            return {"type": "choice", "choices": [c for a in args for c in typing.get_args(a)]}
        facts: dict[str, Any] = {}
        special: list = []
        for a in args:
            if typing.get_origin(a) is typing.Literal:
                special.extend(typing.get_args(a))
            else:
                facts.update(_type_facts(a))
                facts.update(_bounds(getattr(a, "__metadata__", ())))
        facts["special"] = special
        return facts
    if origin is typing.Annotated:
        return _type_facts(args[0])
    return {"type": {int: "int", float: "float", bool: "bool", str: "str"}.get(ann, "str")}


def _python_only(ann) -> bool:
    """An alternative that only Python callers can pass (marked SkipJsonSchema, e.g. a PSF as an array)."""
    from pydantic.json_schema import SkipJsonSchema

    return any(isinstance(m, SkipJsonSchema) for m in getattr(ann, "__metadata__", ()))


REGISTRY: dict[str, Operator] = {}


def operator(name: str, summary: str, params: type[Params], raw_when: bool | dict[str, tuple] = False,
             output: str = "image", memory: Callable[..., int] | None = None, stream: Callable[..., dict] | None = None):
    """Decorator: register `func(image, params, progress) -> Result` as operator `name`. `raw_when` says when
    it reads the raw file itself (its mosaic) instead of a developed image; `output` what it makes; `memory`
    the bytes it needs beyond its input for an H×W×C input (a raw: its sensor size), for memory admission;
    `stream` the same operator on an image read and written a tile at a time (Operator.stream)."""

    def register(func):
        REGISTRY[name] = Operator(name, summary, params, func, raw_when, output, memory, stream)
        return func

    return register


def get(name: str) -> Operator:
    _load()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ParamError(f"unknown operator '{name}' (known: {', '.join(sorted(REGISTRY))})") from None


def operators() -> list[Operator]:
    _load()
    return [REGISTRY[n] for n in sorted(REGISTRY)]


def _load() -> None:
    import pyops.operators  # noqa: F401  (registers every operator)


def _no_progress(fraction: float, message: str) -> None:
    pass


def prepare_input(op: Operator, params: Params, image: Any) -> Any:
    """Turn what the caller passed (array, RawMosaic or path) into what the operator takes."""
    from pyops.io.images import load_input

    if isinstance(image, (str, Path)):
        return load_input(Path(image), op.wants_raw(params))[0]
    if isinstance(image, RawMosaic):
        if op.wants_raw(params):
            return image
        raise ParamError(f"{op.name}: a raw mosaic needs a raw-domain operator; pass a path or a developed image")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ParamError(f"{op.name}: image must be H×W or H×W×C, got shape {arr.shape}")
    if op.wants_raw(params):
        raise ParamError(f"{op.name}: these parameters work on the raw mosaic: pass a raw file path or RawMosaic")
    return arr.astype(np.float32, copy=False)


def execute(name: str, image: Any, params: dict[str, Any] | Params | None = None,
            progress: Progress | None = None) -> Result:
    """Run an operator on an array, a RawMosaic or a path and return its full `Result`."""
    op = get(name)
    p = params if isinstance(params, Params) else op.parse(dict(params or {}))
    source = prepare_input(op, p, image)
    return op.apply(source, p, progress or _no_progress)


def run(op_name: str, image: Any, *, return_info: bool = False, progress: Progress | None = None, **params):
    """Public API: `pyops.run("bin", img, factor=2)` → output array; with `return_info=True`, (array, info)."""
    res = execute(op_name, image, params, progress)
    return (res.data, res.info) if return_info else res.data
