"""Make docs/deblur-s40.png: the shaken Canon PowerShot S40 raw before and after pyops with its defaults — the
commands a user types, no region picked by hand — with the estimated kernel in the corner, and print what the
README quotes (the automatic region, the kernel size, the deconvolution's iterations, the text's gradient energy
and the blank paper's noise, after ÷ before).

    .venv/bin/python docs/deblur_s40.py      (needs ../shared/data beside the checkout)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.s40 import CROP, paper_noise, sharpness  # noqa: E402

RAW = ROOT.parent / "shared" / "data" / "raw" / "canon_powershot_s40__CRW_0113_motionblur.CRW"


def pyops(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "pyops", *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def main() -> None:
    from pyops.color import luminance
    from pyops.io.images import load_input

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = dict(os.environ, XDG_DATA_HOME=str(work / "data"))
        src = work / "IMG_0113.CRW"
        src.symlink_to(RAW)
        estimate = json.loads(pyops("run", "psf_estimate", str(src), "--name", "shake", "--json", env=env))
        result = json.loads(pyops("run", "deconvolve", str(src), "--psf", "shake", "--format", "tif32", "--json",
                                  env=env))
        kernel = np.load(work / "data" / "pyops" / "psf" / "shake.npy")
        before = load_input(src, False)[0]
        after = tifffile.imread(result["output"])
    yb, ya = luminance(before)[CROP], luminance(after)[CROP]
    print(json.dumps({"region": estimate["info"]["region"], "kernel": list(kernel.shape),
                      "iterations": result["info"]["iterations"], "stopped": result["info"]["stopped"],
                      "text_sharpness_ratio": round(sharpness(ya) / sharpness(yb), 2),
                      "paper_noise_ratio": round(paper_noise(ya) / paper_noise(yb), 2)}))
    scale = np.percentile(luminance(before)[CROP], 99.5)

    def display(rgb: np.ndarray) -> np.ndarray:  # linear → sRGB-ish 8 bit
        return (np.clip(rgb[CROP] / scale, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)

    panel = np.concatenate([display(before), np.full((700, 8, 3), 255, np.uint8), display(after)], axis=1)
    k = (kernel / kernel.max() * 255).astype(np.uint8)
    inset = np.asarray(Image.fromarray(k).resize((kernel.shape[1] * 4, kernel.shape[0] * 4), Image.NEAREST))
    h, w = inset.shape
    panel[8: 8 + h, -8 - w: -8] = inset[..., None]
    Image.fromarray(panel).save(ROOT / "docs" / "deblur-s40.png", optimize=True)


if __name__ == "__main__":
    main()
