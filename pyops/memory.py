"""Memory admission: how much RAM a job on one file needs — from the input's size in its header and the working
set its operator declares — and the limit it is held to (a share of the machine's RAM per job worker), so an
oversized job is refused before anything is decoded instead of dying with MemoryError (or the OOM killer).

Figures are bytes of peak resident memory above the idle process; tests/test_memory.py measures real runs and
checks that each estimate is at least the measured peak and at most 2.5 times it."""
from __future__ import annotations

import os
from pathlib import Path

from pyops.io.images import is_raw
from pyops.io.probe import dimensions
from pyops.registry import Operator, Params

ENV = "PYOPS_MAX_MEMORY_GB"  # the CLI's limit when --max-memory-gb is not given
SHARE = 0.7  # of the physical RAM, for all job workers together
MARGIN = 1.15  # allocator slack and small temporaries the per-pixel figures leave out
OVERHEAD = 32 << 20  # per job: FFT plans, kernels, metadata, the encoder's buffers


def physical_bytes() -> int:
    """The machine's RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_limit(workers: int = 1) -> int:
    """What one job may use when `workers` jobs run at once: SHARE of the RAM divided among them."""
    return int(physical_bytes() * SHARE / max(1, workers))


def limit_from(gb: float | None, workers: int = 1) -> int:
    """The limit in bytes: `gb` if given, else PYOPS_MAX_MEMORY_GB, else the default share of the RAM."""
    if gb is None and os.environ.get(ENV):
        try:
            gb = float(os.environ[ENV])
        except ValueError:
            raise ValueError(f"{ENV}={os.environ[ENV]!r} is not a number of GB") from None
    return int(gb * 1e9) if gb is not None else default_limit(workers)


def _decode_bytes(path: Path, h: int, w: int, c: int, mosaic: bool) -> int:
    """Peak while the input is read: a raw's mosaic (16-bit copies), a raw developed by LibRaw (16-bit RGB and
    its float32 copies), or an image file (integer samples, float32, scaled, linearised: about six float32
    copies)."""
    if is_raw(path):
        return (10 if mosaic else 24) * h * w
    return 24 * h * w * c


def estimate(op: Operator, params: Params, path: Path, fmt: str | None = None) -> int | None:
    """Peak bytes of running `op` on the file `path` (result written as `fmt`), or None if its header cannot be
    read (the reader will then say why). The larger of the decoding peak and the decoded input plus the
    operator's working set; when the file is streamed (pyops.process.streams) the working set alone."""
    from pyops.process import streams

    dims = dimensions(Path(path))
    if dims is None:
        return None
    h, w, c = dims
    if streams(op, params, Path(path), fmt):
        return int(op.memory(h, w, c, params, streamed=True) * MARGIN + OVERHEAD)
    mosaic = op.wants_raw(params)
    held = 2 * h * w if mosaic else 4 * h * w * c
    work = op.memory(h, w, c, params) if op.memory else 0
    return int(max(_decode_bytes(Path(path), h, w, c, mosaic), held + work) * MARGIN + OVERHEAD)


def gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def refusal(op: Operator, params: Params, path: Path, limit: int, who_allows: str,
            fmt: str | None = None) -> str | None:
    """Why the job may not run — "<op> on <file> needs about 5.2 GB, <who_allows> 3.1 GB" — or None if it
    fits (or its size is unknown)."""
    need = estimate(op, params, path, fmt)
    if need is None or need <= limit:
        return None
    return f"{op.name} on {Path(path).name} needs about {gb(need)}, {who_allows} {gb(limit)}"
