"""The raw Bayer mosaic as pyops handles it: the sensor's values with what is needed to read them right."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

COLOURS = "RGB"


@dataclass(frozen=True)
class RawMosaic:
    """A Bayer colour-filter-array image.

    `data` is H×W uint16 (the visible area, top-left aligned with `cfa`); `cfa` is the 2×2 pattern of colour
    indices (0 = R, 1 = G, 2 = B) starting at that corner; `black` the 2×2 black level of each CFA site and
    `white` the saturation level, both in `data` units. `xyz_to_camera` (3×3, DNG ColorMatrix convention: XYZ
    under D65 → camera RGB) and `wb` (camera white-balance multipliers R, G, B) describe colour; `orientation`
    is the EXIF orientation code; `pixel_aspect` the width/height of a sensor pixel (≠ 1 on a few old
    cameras); `baseline_ev` the exposure already added by pyops.
    """

    data: np.ndarray
    cfa: np.ndarray
    black: np.ndarray
    white: float
    wb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    xyz_to_camera: np.ndarray | None = None
    make: str = ""
    model: str = ""
    orientation: int = 1
    pixel_aspect: float = 1.0
    baseline_ev: float = 0.0
    source: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pattern(self) -> str:
        """The CFA pattern as letters, row by row: 'RGGB', 'GRBG', …"""
        return "".join(COLOURS[c] for c in self.cfa.ravel())

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def linear(self) -> np.ndarray:
        """Black-subtracted float32 values (not white-normalised): what sums and means are measured on."""
        black = np.tile(self.black, (self.data.shape[0] // 2 + 1, self.data.shape[1] // 2 + 1))
        return (self.data.astype(np.float32) - black[: self.data.shape[0], : self.data.shape[1]]).astype(np.float32)

    def with_data(self, data: np.ndarray, **changes) -> "RawMosaic":
        return replace(self, data=data, **changes)
