#!/usr/bin/env python3
"""pyops for GIMP 3: binning, luminance boost, deconvolution and PSF estimation on a layer or a selection.

Filters ▸ Enhance ▸ pyops. Each procedure sends the selection's bounding box (the whole layer without a selection)
to the local pyops operator server as linear float pixels, follows the job in GIMP's progress bar and puts the
result in a new layer where the region was, in one undo step; "Estimate PSF from selection" saves the kernel in
the pyops PSF library and opens it as a small image. The procedures' arguments are the operators' parameters
from pyops' registry (`pyops client schema --format json`, saved beside this file by install.sh).

Standard library and GIMP's gi modules only: GIMP's Python has no pyops. The server is found through its state
file ($XDG_RUNTIME_DIR/pyops/server.json, with the token) and started with the installed `pyops` if needed.
"""
from __future__ import annotations

import ast
import http.client
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GimpUi, GLib, GObject  # noqa: E402

PYOPS = "@PYOPS@"  # install.sh writes the installed `pyops` here
HERE = Path(__file__).resolve().parent
MENU = "<Image>/Filters/Enhance/pyops"
PROCEDURES = {  # procedure → (operator, menu label)
    "pyops-bin": ("bin", "_Bin…"),
    "pyops-boost": ("boost", "Boost _luminance…"),
    "pyops-deconvolve": ("deconvolve", "_Deconvolve…"),
    "pyops-psf-estimate": ("psf_estimate", "Estimate _PSF from selection…"),
}
HIDDEN = {("psf_estimate", "region")}  # the selection is the region
EXCLUDED = {("bin", "domain"): {"bayer"}}  # needs the raw file, which GIMP does not have


class PyopsError(Exception):
    """A failure to show the user as it is."""


class DialogCancelled(Exception):
    """The user closed the dialog without running."""


# the operator schemas -------------------------------------------------------------------------------------


def load_schema() -> dict:
    """Operator name → its schema entry: the file install.sh wrote, else `pyops client schema`."""
    try:
        ops = json.loads((HERE / "schema.json").read_text())
    except (OSError, ValueError):
        out = subprocess.run([PYOPS, "client", "schema", "--format", "json"], capture_output=True, text=True,
                             timeout=120)
        ops = json.loads(out.stdout)
    return {op["name"]: op for op in ops}


def arg_name(param: str) -> str:
    return param.replace("_", "-")


def choice_nick(value) -> str:
    return str(value).replace("_", "-")


def add_argument(procedure, op_name: str, p: dict) -> None:
    """One procedure argument per operator parameter, with the registry's range, default and help."""
    name, nick = arg_name(p["name"]), p["name"].replace("_", " ").capitalize()
    blurb = p["help"] + (f" ({p['unit']})" if p.get("unit") else "")
    flags = GObject.ParamFlags.READWRITE
    lo = p.get("minimum", p.get("exclusive_minimum"))
    hi = p.get("maximum", p.get("exclusive_maximum"))
    if p["type"] == "choice":
        choice = Gimp.Choice.new()
        values = [c for c in p["choices"] if c not in EXCLUDED.get((op_name, p["name"]), set())]
        for i, c in enumerate(values):
            choice.add(choice_nick(c), i, str(c), "")
        procedure.add_choice_argument(name, nick, blurb, choice, choice_nick(p["default"]), flags)
    elif p["type"] == "bool":
        procedure.add_boolean_argument(name, nick, blurb, bool(p["default"]), flags)
    elif p["type"] == "int" and lo is not None and hi is not None and not p.get("special"):
        procedure.add_int_argument(name, nick, blurb, int(lo), int(hi), int(p["default"]), flags)
    elif p["type"] == "float" and lo is not None and hi is not None and not p.get("special"):
        procedure.add_double_argument(name, nick, blurb, float(lo), float(hi), float(p["default"]), flags)
    else:  # free text, or a number that also takes a word such as 'auto'
        extra = f" — a number or {', '.join(map(str, p['special']))}" if p.get("special") else ""
        procedure.add_string_argument(name, nick, blurb + extra, str(p["default"]), flags)


def params_from(config, op: dict) -> dict:
    """The operator's parameters from the procedure's config, as the server takes them."""
    out = {}
    for p in op["params"]:
        if (op["name"], p["name"]) in HIDDEN:
            continue
        value = config.get_property(arg_name(p["name"]))
        if p["type"] == "choice":
            value = next((c for c in p["choices"] if choice_nick(c) == value), value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        out[p["name"]] = value
    return out


# the server --------------------------------------------------------------------------------------------------


def state_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(tempfile.gettempdir(), f"pyops-{os.getuid()}")
    return Path(base) / "pyops" / "server.json"


class Server:
    """The running pyops server (token auth, loopback only), started with the installed pyops if needed."""

    def __init__(self) -> None:
        self.info = self._running() or self._start()

    @staticmethod
    def _read() -> dict | None:
        try:
            return json.loads(state_file().read_text())
        except (OSError, ValueError):
            return None

    def _running(self) -> dict | None:
        info = self._read()
        if not info:
            return None
        try:
            self.info = info
            self.request("GET", "/v1/health", timeout=5)
            return info
        except (OSError, PyopsError):
            return None

    def _start(self) -> dict:
        try:
            res = subprocess.run([PYOPS, "serve", "--detach"], capture_output=True, text=True, timeout=120)
        except OSError as err:
            raise PyopsError(f"cannot run {PYOPS} ({err.strerror}): install pyops with ./install.sh in the pyops "
                             "checkout") from None
        info = self._read()
        if res.returncode != 0 or not info:
            lines = [line.strip() for line in (res.stderr or res.stdout).splitlines() if line.strip()]
            reason = lines[-1].removeprefix("pyops: ").removeprefix("error: ") if lines else "no reason given"
            raise PyopsError(f"could not start the pyops server ({reason}); run `{PYOPS} serve` in a terminal to "
                             "see why")
        return info

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
                timeout: float = 120) -> bytes:
        conn = http.client.HTTPConnection(self.info["host"], self.info["port"], timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Authorization": f"Bearer {self.info['token']}",
                                                             "Content-Type": content_type})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                detail = json.loads(data).get("detail", data.decode(errors="replace"))
            except ValueError:
                detail = data.decode(errors="replace")
            if isinstance(detail, list):  # pydantic's list of problems
                detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: "
                                   f"{str(d.get('msg')).removeprefix('Value error, ')}" for d in detail)
            raise PyopsError(f"pyops server: {detail} (HTTP {resp.status})")
        return data

    def events(self, job_id: str):
        """The job's states from its event stream, until it ends; the job is cancelled if this process dies."""
        conn = http.client.HTTPConnection(self.info["host"], self.info["port"], timeout=None)
        try:
            conn.request("GET", f"/v1/jobs/{job_id}/events?cancel_on_disconnect=true",
                         headers={"Authorization": f"Bearer {self.info['token']}"})
            resp = conn.getresponse()
            if resp.status >= 400:
                raise PyopsError(f"pyops server: HTTP {resp.status} following job {job_id}")
            for raw in resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data: "):
                    yield json.loads(line[6:])
        finally:
            conn.close()

    def json(self, method: str, path: str, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        return json.loads(self.request(method, path, body))

    def run(self, op: str, params: dict, pixels: bytes, shape: tuple[int, ...]) -> tuple[tuple[int, ...], bytes, dict]:
        """Upload the pixels as .npy, run the job with progress in GIMP, return the result's shape, bytes, info."""
        upload = json.loads(self.request("POST", "/v1/uploads?" + urllib.parse.urlencode({"filename": "region.npy"}),
                                         npy_bytes(pixels, shape), "application/octet-stream"))
        job = self.json("POST", "/v1/jobs", {"operator": op, "params": params,
                                             "inputs": [{"upload": upload["upload_id"]}],
                                             "output": {"format": "npy"}})
        for job in self.events(job["id"]):  # if GIMP kills this plug-in (cancel), the server cancels the job
            Gimp.progress_update(job["progress"])
            Gimp.progress_set_text(f"pyops {op}: {job['message']}")
        result = (job.get("results") or [{}])[0]
        if job["state"] != "done" or result.get("error") or not result.get("download"):
            raise PyopsError(f"pyops {op}: {result.get('error') or job.get('error') or job['state']}")
        shape, data = npy_parse(self.request("GET", result["download"]))
        return shape, data, result.get("info", {})


# .npy without numpy ------------------------------------------------------------------------------------------


def npy_bytes(data: bytes, shape: tuple[int, ...]) -> bytes:
    """A NumPy .npy (version 1.0) of little-endian float32 `data` with `shape`."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{n}, " for n in shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data


def npy_parse(blob: bytes) -> tuple[tuple[int, ...], bytes]:
    """Shape and float32 bytes of a C-ordered little-endian float32 .npy."""
    if blob[:6] != b"\x93NUMPY":
        raise PyopsError("pyops server: the result is not an .npy array")
    if blob[6] == 1:
        n, start = struct.unpack("<H", blob[8:10])[0], 10
    else:
        n, start = struct.unpack("<I", blob[8:12])[0], 12
    header = ast.literal_eval(blob[start:start + n].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise PyopsError(f"pyops server: unexpected array type {header['descr']}")
    return tuple(header["shape"]), blob[start + n:]


# GIMP -----------------------------------------------------------------------------------------------------------


def region_of(drawable) -> tuple[int, int, int, int]:
    """The selection's bounding box intersected with the drawable (the whole drawable without a selection)."""
    ok, x, y, w, h = drawable.mask_intersect()
    if not ok or w == 0 or h == 0:
        raise PyopsError("the selection does not touch this layer")
    return x, y, w, h


def offsets(drawable) -> tuple[int, int]:
    got = drawable.get_offsets()
    return tuple(got[-2:])


def library_name(image) -> str:
    f = image.get_file()
    stem = Path(f.get_path()).stem if f is not None and f.get_path() else "gimp"
    return (re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "gimp")[:50] + "-psf"


def layer_name(op: str, params: dict) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"pyops {op}" + (f" ({shown})" if shown else "")


def run_on_region(procedure, run_mode, image, drawables, config, op: dict) -> None:
    if len(drawables) != 1:
        raise PyopsError("select exactly one layer")
    drawable = drawables[0]
    if run_mode == Gimp.RunMode.INTERACTIVE and not show_dialog(procedure, config, op):
        raise DialogCancelled
    params = params_from(config, op)
    if op["name"] == "psf_estimate" and not params.get("name"):
        params["name"] = library_name(image)
    x, y, w, h = region_of(drawable)
    grey = image.get_base_type() == Gimp.ImageBaseType.GRAY
    fmt, channels = ("Y float", 1) if grey else ("RGB float", 3)
    pixels = drawable.get_buffer().get(Gegl.Rectangle.new(x, y, w, h), 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    Gimp.progress_init(f"pyops {op['name']}")
    server = Server()
    shape, data, info = server.run(op["name"], params, bytes(pixels), (h, w, channels))
    Gimp.progress_update(1.0)
    if op["output"] == "psf":
        show_psf(shape, data, params["name"], run_mode)
        return
    rh, rw = shape[0], shape[1]
    if len(shape) == 2 or shape[2] != channels:
        raise PyopsError(f"pyops {op['name']}: unexpected result shape {shape}")
    ox, oy = offsets(drawable)
    image.undo_group_start()
    try:
        layer = Gimp.Layer.new(image, layer_name(op["name"], params), rw, rh,
                               Gimp.ImageType.GRAY_IMAGE if grey else Gimp.ImageType.RGB_IMAGE, 100.0,
                               Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
        layer.set_offsets(ox + x, oy + y)
        buf = layer.get_buffer()
        buf.set(Gegl.Rectangle.new(0, 0, rw, rh), fmt, data)
        buf.flush()
        layer.update(0, 0, rw, rh)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()


def show_psf(shape, data: bytes, name: str, run_mode) -> None:
    """The estimated kernel as a small grey image (scaled so its peak is white); a PSF map (rows × cols × h × w)
    as its zones' kernels side by side, a black pixel between them, each scaled to its own peak."""
    rows, cols, kh, kw = shape if len(shape) == 4 else (1, 1, shape[0], shape[1])
    values = struct.unpack(f"<{rows * cols * kh * kw}f", data)
    w, h = cols * (kw + 1) - 1, rows * (kh + 1) - 1
    mosaic = [0.0] * (w * h)
    for zone in range(rows * cols):
        kernel = values[zone * kh * kw:(zone + 1) * kh * kw]
        peak = max(kernel) or 1.0
        top, left = (zone // cols) * (kh + 1), (zone % cols) * (kw + 1)
        for y in range(kh):
            mosaic[(top + y) * w + left:(top + y) * w + left + kw] = [v / peak for v in kernel[y * kw:(y + 1) * kw]]
    what = f"{kw}×{kh} px" if rows * cols == 1 else f"map of {cols}×{rows} zones, {kw}×{kh} px each"
    img = Gimp.Image.new_with_precision(w, h, Gimp.ImageBaseType.GRAY, Gimp.Precision.FLOAT_LINEAR)
    layer = Gimp.Layer.new(img, f"PSF {name} ({what}, in the pyops library)", w, h, Gimp.ImageType.GRAY_IMAGE,
                           100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), "Y float", struct.pack(f"<{w * h}f", *mosaic))
    buf.flush()
    if run_mode == Gimp.RunMode.INTERACTIVE:
        Gimp.Display.new(img)


def show_dialog(procedure, config, op: dict) -> bool:
    """GIMP's dialog for the procedure's arguments; for deconvolve, with the PSF library's names."""
    GimpUi.init("pyops-gimp")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, f"pyops — {op['name']}")
    dialog.fill(None)
    if any(p.get("suggest") == "psf_library" for p in op["params"]):
        try:
            names = [p["name"] for p in Server().json("GET", "/v1/psfs")]
        except PyopsError as err:
            names = [f"(library not available: {err})"]
        from gi.repository import Gtk

        label = Gtk.Label(label="PSF library: " + (", ".join(names) or "empty — use Estimate PSF from selection"))
        label.set_line_wrap(True)
        dialog.get_content_area().pack_start(label, False, False, 6)
        label.show()
    ok = dialog.run()
    dialog.destroy()
    return ok


class PyopsPlugin(Gimp.PlugIn):
    def do_query_procedures(self):
        return list(PROCEDURES)

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        op_name, label = PROCEDURES[name]
        op = load_schema()[op_name]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, op)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(label)
        procedure.add_menu_path(MENU)
        procedure.set_documentation(op["summary"], op["summary"] + " (pyops operator " + op_name + ")", name)
        procedure.set_attribution("pyops", "pyops", "2026")
        for p in op["params"]:
            if (op_name, p["name"]) not in HIDDEN:
                add_argument(procedure, op_name, p)
        return procedure

    def run(self, procedure, run_mode, image, drawables, config, op):
        try:
            run_on_region(procedure, run_mode, image, drawables, config, op)
        except DialogCancelled:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        except (PyopsError, OSError) as err:
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(err)))
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


Gimp.main(PyopsPlugin.__gtype__, sys.argv)
