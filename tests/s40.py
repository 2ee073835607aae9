"""How the shaken Canon S40 raw (CRW_0113) is judged, shared by its test and docs/deblur_s40.py: in a crop with
two lines of text and blank paper, the text's gradient energy and the paper's noise, after ÷ before."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

CROP = np.s_[900:1600, 650:1450]  # of the developed frame (luminance)
TEXT_REGIONS = {"cyan": (740, 380, 512, 256), "black": (760, 960, 512, 480),  # x, y, w, h: two disjoint labels
                "refer": (760, 1460, 512, 256)}  # and the dense paragraph at the bottom of the frame
TEXT = np.s_[150:450, 100:700]  # inside CROP: the two lines of text
PAPER = np.s_[230:300, 150:400]  # inside CROP: blank paper between them


def sharpness(y: np.ndarray) -> float:
    """Gradient energy over the text of a CROP."""
    return float(np.mean(np.diff(y, axis=1)[TEXT] ** 2) + np.mean(np.diff(y, axis=0)[TEXT] ** 2))


def paper_noise(y: np.ndarray) -> float:
    """Noise on the blank paper of a CROP, its shading removed."""
    flat = y[PAPER]
    return float(np.std(flat - uniform_filter(flat, 9)))
