"""Non-finite input: NaN and ±inf pixels are missing data, filled from their nearest finite neighbour (per
channel) so no operator ever sees them. The check costs one reduction when the image is finite."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

_EIGHT = np.ones((3, 3), bool)  # 8-connectivity: the pixels around a missing region are all finite


class NoFiniteData(ValueError):
    """A channel of the image has no finite value: there is nothing to fill from."""


def all_finite(x: np.ndarray) -> bool:
    """True if no value is NaN or ±inf. A sum propagates NaN and inf, so a finite sum proves it in one pass;
    only a sum that is not finite (also possible by overflow of huge values) needs the value-by-value check."""
    return bool(np.isfinite(np.sum(x))) or bool(np.isfinite(x).all())


def _fill_plane(plane: np.ndarray, bad: np.ndarray) -> None:
    """Fill `plane` in place where `bad`: each missing region, within its bounding box grown by one pixel
    (which holds finite pixels all around it), takes the value of the nearest finite pixel. Only the box
    around all missing pixels is labelled (a few dead pixels cost next to nothing)."""
    rows, cols = np.flatnonzero(bad.any(axis=1)), np.flatnonzero(bad.any(axis=0))
    box = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    plane, bad = plane[box], bad[box]
    labels, _ = ndimage.label(bad, structure=_EIGHT)
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        sub, mine = plane[box], labels[box] == i
        iy, ix = ndimage.distance_transform_edt(bad[box], return_distances=False, return_indices=True)
        sub[mine] = sub[iy[mine], ix[mine]]


def fill_nonfinite(x: np.ndarray, part: bool = False) -> tuple[np.ndarray, int]:
    """(x with every NaN/±inf replaced by the value of its nearest finite neighbour in the same channel, how
    many values were replaced). `x` (H×W or H×W×C float) is returned as it is when all finite. `part`: x is a
    part of an image (a tile read on its own), and a channel of it without a finite value becomes 0 — missing
    data with nothing near to fill from — instead of raising NoFiniteData."""
    if all_finite(x):
        return x, 0
    out = np.array(x, dtype=np.float32, copy=True)
    planes = out[..., None] if out.ndim == 2 else out
    filled = 0
    for c in range(planes.shape[2]):
        bad = ~np.isfinite(planes[..., c])
        n = int(np.count_nonzero(bad))
        if n == bad.size and part:
            planes[..., c] = 0
        elif n == bad.size:
            raise NoFiniteData("the image has no finite pixel value" if planes.shape[2] == 1
                               else f"channel {c} of the image has no finite value")
        elif n:
            _fill_plane(planes[..., c], bad)
            filled += n
    return out, filled
