"""One file through one operator: read (inputs are only read), run, write atomically under a name that never
replaces an existing file, carry EXIF over. Used by the CLI and the server alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyops import provenance
from pyops.io import metadata, stream
from pyops.io.dng import write_dng
from pyops.io.files import check_input, output_name, write_atomic
from pyops.io.images import FORMATS, load_input, write_image
from pyops.io.raw import develop_mosaic
from pyops.registry import Operator, ParamError, Params, Progress, Result, _no_progress, get, note_clipping


@dataclass
class Outcome:
    source: Path
    output: Path
    info: dict[str, Any] = field(default_factory=dict)


def _pick_format(res: Result, fmt: str | None) -> str:
    if fmt is None:
        return "dng" if res.mosaic is not None else "tif16"
    if fmt == "dng" and res.mosaic is None:
        raise ParamError("format dng is only for raw-domain results (bin --domain bayer)")
    return fmt


def streams(op: Operator, p: Params, source: Path, fmt: str | None, anywhere: bool = False) -> bool:
    """Whether `op` runs on `source` a tile at a time (Operator.stream): it can, it takes a developed image, the
    file can be read in parts (pyops.io.stream.large) and is large — or of any size when the tiles may run
    `anywhere` (a Dask cluster) —, and the result is a TIFF."""
    return (op.stream is not None and not op.wants_raw(p) and (fmt or "tif16") in stream.STREAM_FORMATS
            and stream.large(source, 0 if anywhere else None))


def process_file(op_name: str, params: dict[str, Any] | Params, source: Path, out_dir: Path | None = None,
                 fmt: str | None = None, progress: Progress | None = None,
                 source_name: str | None = None, client=None) -> Outcome:
    """Run `op_name` on the file `source` and write its result next to it (or in `out_dir`); the provenance
    names the source `source_name` if given (an upload's own file name), else by its path. With a Dask `client`,
    an operator that works in tiles runs them on its workers when the file can be read in parts (each worker
    reads its own tiles from the shared file); otherwise it runs here, and a note says why."""
    op = get(op_name)
    p = params if isinstance(params, Params) else op.parse(dict(params))
    progress = progress or _no_progress
    source = check_input(Path(source))
    if fmt is not None and fmt not in FORMATS:
        raise ParamError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if op.output == "psf" and not p.name:
        from pyops.operators.psf_estimate import library_name

        p = p.model_copy(update={"name": library_name(source.stem)})  # a PSF from a file is always kept
    if streams(op, p, source, fmt, anywhere=client is not None):
        from pyops.ops.deconv.tiles import DaskPool

        return _process_streamed(op, p, source, out_dir, fmt or "tif16", progress, source_name,
                                 DaskPool(client) if client is not None else None)
    image, colorants, notes = load_input(source, op.wants_raw(p))
    if client is not None and op.stream is not None:
        notes.append("ran in this process, not on the cluster: only a TIFF of 8/16-bit or float samples "
                     "written as a TIFF can be read and written a tile at a time")
    res = op.apply(image, p, progress)
    fmt = ("npy" if fmt == "npy" else "png") if op.output == "psf" else _pick_format(res, fmt)
    notes += res.info.get("notes", [])
    if fmt == "dng" and res.mosaic.xyz_to_camera is None:
        notes.append("no colour matrix is known for this camera: wrote a linear TIFF instead of a DNG")
        fmt = "tif16"
    pixels, orientation = res.data, 1
    if res.mosaic is not None and fmt == "dng":
        orientation = res.mosaic.orientation
    elif res.mosaic is not None:
        pixels, dev_notes = develop_mosaic(res.mosaic)
        notes += dev_notes
    info = dict(res.info, format=fmt, notes=notes)
    xmp = provenance.record(source, op.name, p.model_dump(), info, source_name)
    exif = metadata.capture_exif(source)

    def write(tmp: Path) -> None:
        if fmt == "npy":  # raw pixels (or the kernel itself) for programs such as the GIMP plug-in: no metadata
            write_image(tmp, pixels, fmt)
            return
        if op.output == "psf":  # the file is the kernel's preview; the kernel itself is in the PSF library
            from pyops.psf_view import render

            render(res.data, f"PSF {res.info.get('saved_as', '')} of {source.name}", tmp, image)
        elif fmt == "dng":
            write_dng(tmp, res.mosaic)
        else:
            write_image(tmp, pixels, fmt, res.colorants if res.colorants is not None else colorants)
        warning = metadata.write_metadata(tmp, exif, xmp, orientation)
        if warning:
            notes.append(warning)

    progress(0.95, "writing")  # the last point where a cancel can stop it
    suffix = FORMATS[fmt]
    out = write_atomic(Path(out_dir) if out_dir else source.parent,
                       lambda n: output_name(source, op.name, suffix, n), suffix, write)
    return Outcome(source, out, info)


def _process_streamed(op: Operator, p: Params, source: Path, out_dir: Path | None, fmt: str, progress: Progress,
                      source_name: str | None, pool=None) -> Outcome:
    """process_file for an operator that streams (`streams`): the input is read and the result written a tile at
    a time, into the temp file that is published when complete, so memory holds tiles, not the image; the tiles
    run on `pool`'s workers if given (tiles.DaskPool)."""
    read = stream.Reader(source)
    exif = metadata.capture_exif(source)
    info: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        sink = stream.Writer(tmp, read.shape, fmt, read.colorants)
        info.update(op.stream(read, read.shape, sink, p, progress, pool))
        notes = list(read.notes) + info.get("notes", [])
        note_clipping(info, notes, sink.clipped / sink.pixels)
        info.update(format=fmt, notes=notes)
        progress(0.95, "writing")  # the last point where a cancel can stop it
        warning = sink.write_xmp(metadata.xmp_packet(exif, provenance.record(source, op.name, p.model_dump(), info,
                                                                              source_name)))
        if warning:
            notes.append(warning)

    suffix = FORMATS[fmt]
    out = write_atomic(Path(out_dir) if out_dir else source.parent,
                       lambda n: output_name(source, op.name, suffix, n), suffix, write)
    return Outcome(source, out, info)
