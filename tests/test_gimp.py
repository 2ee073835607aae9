"""The GIMP 3 plug-in in a real GIMP 3.0 (Debian trixie chroot, batch mode): each procedure through the PDB on a
rectangle selection of a linear float image, the pixels and the PSF library checked from outside; the error
paths end GIMP with a non-zero exit and leave the image as it was. A pyops server runs on the host."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import fftconvolve

from pyops.ops.deconv import psf as psfmod
from tests.conftest import MOTION_CRW, need
from tests.gimp_helpers import install_plugin, require_gimp, run_gimp
from tests.server_helpers import start_server

SEL = (40, 30, 160, 128)  # x, y, w, h of the selection
TRUE_PSF = "motion:length=9,angle=30"

BATCH = r'''
import json
import numpy as np
from gi.repository import Gimp, Gegl

OUT = @OUT@
status = {}
src = np.load(OUT + "/src.npy")
h, w = src.shape[:2]
image = Gimp.Image.new_with_precision(w, h, Gimp.ImageBaseType.RGB, Gimp.Precision.FLOAT_LINEAR)
layer = Gimp.Layer.new(image, "photo", w, h, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
image.insert_layer(layer, None, 0)
buf = layer.get_buffer()
buf.set(Gegl.Rectangle.new(0, 0, w, h), "RGB float", src.astype(np.float32).tobytes())
buf.flush()
image.select_rectangle(Gimp.ChannelOps.REPLACE, *@SEL@)

def pixels(item):
    b = item.get_buffer()
    iw, ih = item.get_width(), item.get_height()
    data = b.get(Gegl.Rectangle.new(0, 0, iw, ih), 1.0, "RGB float", Gegl.AbyssPolicy.CLAMP)
    return np.frombuffer(bytes(data), np.float32).reshape(ih, iw, 3)

def call(step, procedure, args):
    proc = Gimp.get_pdb().lookup_procedure(procedure)
    status[step + ".found"] = proc is not None
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    for k, v in args.items():
        cfg.set_property(k, v)
    before = {item.get_id() for item in image.get_layers()}
    res = proc.run(cfg)
    ok = res.index(0) == Gimp.PDBStatusType.SUCCESS
    status[step + ".ok"] = ok
    status[step + ".error"] = "" if ok else str(res.index(1))
    added = [item for item in image.get_layers() if item.get_id() not in before]
    status[step + ".new_layers"] = len(added)
    if ok and added:
        new = added[0]
        status[step + ".name"] = new.get_name()
        status[step + ".offsets"] = list(new.get_offsets())[-2:]
        np.save(OUT + "/" + step + ".npy", pixels(new))
    return ok

for step, procedure, args in @CALLS@:
    ok = call(step, procedure, args)
    json.dump(status, open(OUT + "/status.json", "w"))
    if not ok:
        np.save(OUT + "/after_error.npy", pixels(layer))
        raise RuntimeError(status[step + ".error"])
'''


def _scene(rng) -> tuple[np.ndarray, np.ndarray]:
    """A linear RGB scene (discs and bars) and the same scene blurred by the true PSF."""
    yy, xx = np.mgrid[:192, :256]
    sharp = np.full((192, 256, 3), 0.15, np.float32)
    for _ in range(60):
        cy, cx, r = rng.integers(0, 192), rng.integers(0, 256), rng.integers(4, 18)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r if rng.random() < 0.5 else (abs(yy - cy) < r) & (abs(xx - cx) < r // 3)
        sharp[mask] = rng.uniform(0.05, 0.8, 3)
    k = psfmod.parse_spec(TRUE_PSF)
    blurred = np.stack([fftconvolve(np.pad(sharp[..., c], 24, mode="reflect"), k, mode="same")[24:-24, 24:-24]
                        for c in range(3)], axis=-1)
    return sharp, (blurred + rng.normal(0, 0.002, blurred.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def gimp_setup(tmp_path_factory):
    require_gimp()
    work = tmp_path_factory.mktemp("gimp")
    root = work / "photos"
    root.mkdir()
    server = start_server(work, root)
    yield work, server
    server.stop()


def _run(work, server, calls, pyops_exe="/nonexistent/pyops", name="main", source=None, sel=SEL, **env_extra):
    """Run `calls` in GIMP on an image of `source` (default: the blurred scene) with `sel` selected."""
    out = work / name
    out.mkdir()
    sharp, blurred = _scene(np.random.default_rng(5))
    if source is not None:
        sharp, blurred = None, source
    np.save(out / "src.npy", blurred)
    env = dict(server.env, GIMP3_DIRECTORY=str(work / f"gimp3-{name}"), **env_extra)
    install_plugin(work / f"gimp3-{name}", pyops_exe)
    batch = (BATCH.replace("@OUT@", repr(str(out))).replace("@SEL@", repr(sel))
             .replace("@CALLS@", repr(calls)))
    res = run_gimp(work, batch, env)
    status = json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}
    return res, status, out, sharp, blurred


def test_gimp_procedures_bin_deconvolve_and_estimate_on_the_selection(gimp_setup):
    work, server = gimp_setup
    calls = [("bin", "pyops-bin", {"factor": 2.0, "mode": "sum"}),
             ("deconvolve", "pyops-deconvolve", {"psf": TRUE_PSF, "iterations": 60}),
             ("psf", "pyops-psf-estimate", {"name": "gimp-shake", "size": "21"})]
    res, status, out, sharp, blurred = _run(work, server, calls)
    assert res.returncode == 0, res.log[-3000:]
    x, y, w, h = SEL
    region = blurred[y:y + h, x:x + w]
    # binning: a half-size layer at the selection holding the 2×2 sums (+2 EV)
    assert status["bin.ok"] and status["bin.new_layers"] == 1 and status["bin.offsets"] == [x, y]
    binned = np.load(out / "bin.npy")
    expected = region.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))
    np.testing.assert_allclose(binned, expected, atol=1e-4)
    assert status["bin.name"].startswith("pyops bin (factor=2")
    # deconvolution of the selection: closer to the truth than the blurred input
    assert status["deconvolve.ok"] and status["deconvolve.offsets"] == [x, y]
    sharpened = np.load(out / "deconvolve.npy")
    truth = sharp[y:y + h, x:x + w]
    inner = np.s_[12:-12, 12:-12]

    def psnr(a):
        return 10 * np.log10(1 / np.mean((a[inner] - truth[inner]) ** 2))

    assert psnr(sharpened) > psnr(region) + 3, (psnr(sharpened), psnr(region))
    # PSF estimation: saved in the (server's) library, close to the true kernel; the image gets no layer
    assert status["psf.ok"] and status["psf.new_layers"] == 0, status
    kernel = np.load(work / "data" / "pyops" / "psf" / "gimp-shake.npy")
    true = psfmod.parse_spec(TRUE_PSF)
    corr = fftconvolve(kernel, true[::-1, ::-1], mode="full").max() / np.sqrt((kernel ** 2).sum() * (true ** 2).sum())
    assert corr > 0.7, corr


def test_gimp_bad_parameter_fails_with_the_reason_and_leaves_the_image(gimp_setup):
    work, server = gimp_setup
    res, status, out, _, blurred = _run(work, server, [("bad", "pyops-deconvolve", {"psf": "gaussian:sigma=-1"})],
                                        name="bad")
    assert res.returncode != 0
    assert not status["bad.ok"] and status["bad.new_layers"] == 0
    assert "sigma must be in (0, 100]" in status["bad.error"] and "Value error" not in status["bad.error"]
    np.testing.assert_array_equal(np.load(out / "after_error.npy"), blurred)


def test_gimp_without_a_server_says_so(gimp_setup, tmp_path):
    work, server = gimp_setup
    # no state file in that runtime folder, and no pyops to start a server with
    res, status, out, _, blurred = _run(work, server, [("down", "pyops-boost", {})], name="down",
                                        XDG_RUNTIME_DIR=str(tmp_path))
    assert res.returncode != 0
    error = status["down.error"]  # one line saying what to do, no traceback
    assert "install pyops with ./install.sh" in error and "\n" not in error and "Traceback" not in error, error
    assert status["down.new_layers"] == 0
    np.testing.assert_array_equal(np.load(out / "after_error.npy"), blurred)


def test_gimp_too_large_a_region_is_refused_with_the_limit(gimp_setup):
    work, _ = gimp_setup
    small = start_server(work / "small", work / "photos", "--max-megapixels", "0.01")  # the region is 0.02 MP
    try:
        res, status, out, _, blurred = _run(work, small, [("big", "pyops-boost", {})], name="big")
    finally:
        small.stop()
    assert res.returncode != 0
    assert "above this server's limit" in status["big.error"] and status["big.new_layers"] == 0
    np.testing.assert_array_equal(np.load(out / "after_error.npy"), blurred)


def test_gimp_psf_map_of_the_shaken_raw_deconvolves_it(gimp_setup):
    """A 2×2 PSF map estimated on the whole shaken S40 frame (developed linear) is saved in the library and shown
    as its four kernels side by side; deconvolve with it gives a layer whose text is sharper than the photo's."""
    from pyops.io.images import load_input
    from tests.s40 import CROP, sharpness

    work, server = gimp_setup
    photo = np.asarray(load_input(need(MOTION_CRW), False)[0], np.float32)
    h, w = photo.shape[:2]
    calls = [("map", "pyops-psf-estimate", {"name": "gimp-map", "grid": "2x2"}),
             ("deblur", "pyops-deconvolve", {"psf": "gimp-map", "iterations": 10})]
    res, status, out, _, _ = _run(work, server, calls, name="s40", source=photo, sel=(0, 0, w, h))
    assert res.returncode == 0, res.log[-3000:]
    assert status["map.ok"] and status["map.new_layers"] == 0, status
    kernels = np.load(work / "data" / "pyops" / "psf" / "gimp-map.npy")
    assert kernels.shape[:2] == (2, 2) and np.allclose(kernels.sum(axis=(2, 3)), 1, atol=1e-5)
    assert status["deblur.ok"] and status["deblur.new_layers"] == 1, status
    deblurred = np.load(out / "deblur.npy")
    assert deblurred.shape == photo.shape

    def y(rgb):
        return rgb[CROP[0], CROP[1]] @ np.array([0.2126, 0.7152, 0.0722], np.float32)

    assert sharpness(y(deblurred)) > 1.5 * sharpness(y(photo))
