"""The darktable script in a real darktable under Xvfb — 4.2.1 from Debian 12 and 5.0 from a Debian trixie
chroot: every operator through the core function that the module's button, the shortcuts and the export
storage call, a shortcut action itself (4.2.1: darktable 5 does not deliver shortcuts fired from Lua), the error
paths, and cancel. One darktable session per version runs every step and writes what it saw; the tests check
it and the files from outside."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import rawpy

from pyops import provenance
from pyops.io.dng import write_dng
from pyops.io.images import read_image
from pyops.mosaic import RawMosaic
from pyops.registry import operators
from tests.conftest import CANON_CHECKER, MOTION_CRW, need
from tests.darktable_helpers import require_darktable, run_darktable

RAW_NAME = "IMG 0101's Ü.CRW"  # a space, a quote and a non-ASCII letter: quoting must hold

DRIVER = r'''
local dt = require "darktable"
local pyops = require("pyops/pyops").pyops
local out = io.open([[@STATUS@]], "a")
local function put(k, v) out:write(k, "\t", tostring(v):gsub("[\t\n]", " "), "\n") out:flush() end
local function film_count(dir)
  local n = 0
  for _, film in ipairs(dt.films) do
    if film.path == dir then n = n + #film end
  end
  return n
end
local function report(step, run)
  put(step .. ".imported", #run.imported)
  put(step .. ".errors", table.concat(run.errors, " | "))
  put(step .. ".cancelled", run.cancelled)
  for i, r in ipairs(run.imported) do
    put(step .. ".result" .. i, r.path .. "/" .. r.filename)
    put(step .. ".grouped" .. i, r.group_leader.id == run.source.group_leader.id)
    local tags = {}
    for _, t in ipairs(dt.tags.get_tags(r)) do table.insert(tags, t.name) end
    put(step .. ".tags" .. i, table.concat(tags, ","))
    put(step .. ".rating" .. i, r.rating)
    put(step .. ".red" .. i, r.red)
    put(step .. ".title" .. i, r.title)
  end
end
local function run(step, op, img, params, opts)
  local r = pyops.run_operator(op, {{image = img}}, params, opts)
  r.source = img
  report(step, r)
  return r
end

dt.preferences.write("pyops", "roots", "string", [[@PHOTOS@]])
put("ops", #pyops.ops)
for _, op in ipairs(pyops.ops) do
  local current = pyops.current_params(op.name)
  for _, p in ipairs(op.params) do put("widget." .. op.name .. "." .. p.name, current[p.name]) end
end
local raw = dt.database.import([[@PHOTOS@/@RAW@]])
dt.tags.attach(dt.tags.create("client|smith"), raw)
raw.rating = 3
raw.red = true
raw.title = "checker"
put("source", raw.filename)

-- every operator with its defaults, through the core function
for _, op in ipairs(pyops.ops) do run("default_" .. op.name, op.name, raw, {}) end
-- raw-domain binning: a +2 EV DNG
run("bayer", "bin", raw, {domain = "bayer", factor = "2", mode = "sum"})
-- exported TIFF path with explicit parameters
run("boost", "boost", raw, {ev = "1", method = "gain", highlights = "rolloff"})

-- errors: a bad parameter, then a pyops command that does not exist
local before = film_count([[@PHOTOS@]])
run("badparam", "boost", raw, {ev = "99"})
dt.preferences.write("pyops", "executable", "file", "/nonexistent/pyops")
run("noserver", "boost", raw, {})
dt.preferences.write("pyops", "executable", "file", [[@PYOPS@]])
put("after_errors.images", film_count([[@PHOTOS@]]) - before)

-- cancel mid-job, through the same function as the progress bar's cancel button
local big = dt.database.import([[@PHOTOS@/BIG_0001.dng]])
run("cancel", "twostop", big, {}, {on_progress = function(f, msg)
  if msg:find("developing") then put("cancel.requested", pyops.cancel()) end
end})

-- a shortcut action (delivered to Lua in darktable 4.2.1)
if dt.configuration.api_version_minor == 0 then
  local n = #pyops.history
  dt.gui.selection({raw})
  dt.gui.action("lua/pyops: run twostop", 0, "", "", 1.0)
  local waited = 0
  while (#pyops.history == n or not pyops.history[#pyops.history].finished) and waited < 120000 do
    dt.control.sleep(200)
    waited = waited + 200
  end
  local r = pyops.history[#pyops.history]
  r.source = raw
  report("shortcut", r)
end
-- the PSF flow on the shaken raw: a virtual copy (where the user would crop a sharp-edged detail) →
-- psf_estimate saves "shake" in the library and imports its picture → deconvolve offers "shake" and uses it
local shaken = dt.database.import([[@PHOTOS@/@SHAKE@]])
local copy = shaken:duplicate()
put("psf.before", table.concat(pyops.choices("deconvolve", "psf"), ","))
local est = run("psf", "psf_estimate", copy, {name = "shake"})
put("psf.after", table.concat(pyops.choices("deconvolve", "psf"), ","))
run("deblur", "deconvolve", shaken, {psf = "shake", iterations = "20"})
-- a PSF map: one kernel per zone of a 2×2 grid, then deconvolve with the map
run("psfmap", "psf_estimate", shaken, {name = "shake-map", grid = "2x2"})
run("deblurmap", "deconvolve", shaken, {psf = "shake-map", iterations = "10"})
-- the selected image[s] module's buttons: one per operator, each runs its operator on the images it is given
local script = require("pyops/pyops")
local function count_actions()
  local n = 0
  for _ in pairs(pyops.actions) do n = n + 1 end
  return n
end
put("actions", count_actions())
local twin = raw:duplicate()
local n_runs = #pyops.history
pyops.actions["pyops_boost"]("clicked", {raw, twin})
put("action.runs", #pyops.history - n_runs)
local r = pyops.history[#pyops.history]
r.source = raw
report("action", r)
script.destroy()
put("actions.destroyed", count_actions())
script.restart()
put("actions.restarted", count_actions())
put("log", table.concat(pyops.log, " | "))
put("end", "still running")
out:close()
'''


@pytest.fixture(scope="module", params=["4.2", "5.0"])
def session(request, tmp_path_factory):
    version = request.param
    require_darktable(version)
    work = tmp_path_factory.mktemp(f"darktable{version}")
    photos = work / "photos"
    photos.mkdir()
    shutil.copy(need(CANON_CHECKER), photos / RAW_NAME)
    shutil.copy(need(MOTION_CRW), photos / MOTION_CRW.name)
    rng = np.random.default_rng(3)
    write_dng(photos / "BIG_0001.dng", RawMosaic(
        data=rng.integers(200, 3000, size=(4000, 6000), dtype=np.uint16), cfa=np.array([[0, 1], [1, 2]], np.uint8),
        black=np.full((2, 2), 128, np.float32), white=4095.0, xyz_to_camera=np.eye(3), make="pyops", model="test"))
    import sys
    from pathlib import Path

    pyops_exe = str(Path(sys.executable).with_name("pyops"))
    driver = (DRIVER.replace("@STATUS@", str(work / "status.txt")).replace("@PHOTOS@", str(photos))
              .replace("@RAW@", RAW_NAME).replace("@SHAKE@", MOTION_CRW.name).replace("@PYOPS@", pyops_exe))
    result = run_darktable(work, driver, version=version, restore=(photos, work / "data"))
    assert "lua_error" not in result.status, result.status["lua_error"]
    assert result.status.get("end") == "still running", result.log[-3000:]
    return result.status, photos


def test_darktable_script_loads_the_operators_from_the_registry(session):
    status, _ = session
    assert int(status["ops"]) == len(operators())
    for op in operators():  # every widget starts at the registry's default
        for name, field in op.params.model_fields.items():
            shown = status[f"widget.{op.name}.{name}"]
            default = field.default
            if isinstance(default, bool):
                assert shown == str(default).lower()
            elif isinstance(default, (int, float)):
                assert float(shown) == pytest.approx(float(default)), (op.name, name, shown)
            else:
                assert shown == str(default), (op.name, name, shown)


@pytest.mark.parametrize("op", [o.name for o in operators()])
def test_darktable_runs_every_operator_and_imports_the_grouped_tagged_result(session, op):
    status, photos = session
    step = f"default_{op}"
    assert status[f"{step}.imported"] == "1", status.get(f"{step}.errors")
    result = status[f"{step}.result1"]
    assert result.startswith(str(photos) + "/") and f"_pyops-{op}" in result
    assert status[f"{step}.grouped1"] == "true"
    tags = status[f"{step}.tags1"].split(",")
    assert f"pyops|{op}" in tags and "client|smith" in tags
    assert (status[f"{step}.rating1"], status[f"{step}.red1"], status[f"{step}.title1"]) == ("3", "true", "checker")
    rec = provenance.read(result)
    assert rec["operator"] == op
    if op == "twostop":
        assert rec["source"] == str(photos / RAW_NAME)  # raw-domain: the original itself, not an export


def test_darktable_bayer_binning_gives_half_size_and_four_times_the_signal(session):
    status, photos = session
    dng = status["bayer.result1"]
    assert dng.endswith("_pyops-bin.dng") and status["bayer.grouped1"] == "true"
    with rawpy.imread(dng) as binned, rawpy.imread(str(photos / RAW_NAME)) as orig:
        b, o = binned.raw_image_visible.astype(float), orig.raw_image_visible.astype(float)
        assert b.shape == (o.shape[0] // 2, o.shape[1] // 2)
        ratio = (b - binned.black_level_per_channel[0]).mean() / (o - orig.black_level_per_channel[0]).mean()
    assert ratio == pytest.approx(4.0, rel=0.01)


def test_darktable_boost_works_on_the_exported_image(session):
    status, _ = session
    out = status["boost.result1"]
    assert out.endswith("_pyops-boost_01.tif")  # the default run made _pyops-boost.tif: never overwritten
    rec = provenance.read(out)
    assert rec["parameters"]["ev"] == 1.0 and rec["source"].endswith(".tif")  # the 32-bit export darktable made
    assert read_image(out).pixels.mean() > 0


def test_darktable_errors_show_a_message_and_import_nothing(session):
    status, _ = session
    assert status["badparam.imported"] == "0" and "less than or equal to 16" in status["badparam.errors"]
    assert status["noserver.imported"] == "0" and status["noserver.errors"] != ""
    assert status["after_errors.images"] == "0"
    assert "less than or equal to 16" in status["log"]
    assert status["end"] == "still running"


def test_darktable_cancel_stops_the_job_and_leaves_no_file(session):
    status, photos = session
    assert status["cancel.requested"] == "true" and status["cancel.cancelled"] == "true"
    assert status["cancel.imported"] == "0"
    assert not list(photos.glob("BIG_0001_pyops*"))


def test_darktable_psf_flow_estimates_saves_offers_and_deconvolves(session):
    status, photos = session
    assert status["psf.imported"] == "1", status.get("psf.errors")
    preview = status["psf.result1"]
    assert preview.endswith("_v1_pyops-psf_estimate.png") and status["psf.grouped1"] == "true"
    assert "pyops|psf_estimate" in status["psf.tags1"].split(",")
    assert "shake" not in status["psf.before"].split(",") and "shake" in status["psf.after"].split(",")
    library = photos.parent / "data" / "pyops" / "psf"
    kernel = np.load(library / "shake.npy")
    assert kernel.ndim == 2 and kernel.shape[0] % 2 == 1 and abs(kernel.sum() - 1) < 1e-5
    assert provenance.read(preview)["parameters"]["name"] == "shake"
    assert status["deblur.imported"] == "1", status.get("deblur.errors")
    rec = provenance.read(status["deblur.result1"])
    assert rec["parameters"]["psf"] == "shake" and rec["info"]["psf_shape"] == list(kernel.shape)


def test_darktable_psf_map_flow_estimates_a_2x2_map_and_deconvolves_with_it(session):
    """`grid` comes from the operator's schema like every parameter: a 2×2 map of the shaken raw is saved as one
    library entry, its preview (the kernels over the photo) imported and grouped, and deconvolve uses it."""
    status, photos = session
    assert status["psfmap.imported"] == "1", status.get("psfmap.errors")
    assert status["psfmap.grouped1"] == "true" and status["psfmap.result1"].endswith(".png")
    kernels = np.load(photos.parent / "data" / "pyops" / "psf" / "shake-map.npy")
    assert kernels.ndim == 4 and kernels.shape[:2] == (2, 2) and np.allclose(kernels.sum(axis=(2, 3)), 1, atol=1e-5)
    assert len(provenance.read(status["psfmap.result1"])["info"]["zones"]) == 4
    assert status["deblurmap.imported"] == "1", status.get("deblurmap.errors")
    rec = provenance.read(status["deblurmap.result1"])
    assert rec["parameters"]["psf"] == "shake-map" and rec["info"]["psf_shape"] == list(kernels.shape)
    assert rec["info"]["tiles"] > 1 and status["deblurmap.grouped1"] == "true"


def test_darktable_selected_images_module_has_an_action_per_operator(session):
    """One button per operator in lighttable's selected image[s] module (dt.gui.libs.image.register_action): its
    callback, given two selected images, runs the operator on both with the module's parameters and imports the
    results grouped with them; the script manager's destroy removes the buttons and restart adds them again."""
    status, photos = session
    n_ops = len(operators())
    assert status["actions"] == str(n_ops), status.get("log")
    assert status["action.runs"] == "1" and status["action.imported"] == "2", status.get("action.errors")
    assert status["action.grouped1"] == status["action.grouped2"] == "true"
    assert all("pyops|boost" in status[f"action.tags{i}"].split(",") for i in (1, 2))
    assert status["actions.destroyed"] == "0" and status["actions.restarted"] == str(n_ops)


@pytest.mark.parametrize("session", ["4.2"], indirect=True)
def test_darktable_shortcut_action_runs_the_operator(session):
    status, _ = session
    assert status["shortcut.imported"] == "1" and status["shortcut.grouped1"] == "true"
    assert status["shortcut.result1"].endswith("_pyops-twostop_01.tif")  # the default run made the first one


def test_a_session_darktable_dies_in_is_run_again_from_the_same_files(tmp_path):
    """The harness's answer to darktable's own rare crashes (tests/darktable_helpers.run_darktable): a run killed
    by a signal is kept as a log and run once more, with the folders the driver changed put back as they were."""
    require_darktable("4.2")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(need(CANON_CHECKER), photos / "a.CRW")
    mark = tmp_path / "crashed-once"
    driver = f'''
local dt = require "darktable"
dt.database.import([[{photos}/a.CRW]])
if not io.open([[{mark}]]) then
  io.open([[{mark}]], "w"):close()
  io.open([[{photos}/first-attempt.txt]], "w"):close()
  dt.control.execute("kill -ABRT $PPID")
  dt.control.sleep(60000)
end
local out = io.open([[{tmp_path}/status.txt]], "a") out:write("end\\tstill running\\n") out:close()
'''
    result = run_darktable(tmp_path, driver, restore=(photos,))
    assert result.crashes == 1 and (tmp_path / "darktable-crash-1.log").exists()
    assert result.status.get("end") == "still running", result.log[-2000:]
    assert sorted(p.name for p in photos.iterdir() if p.suffix != ".xmp") == ["a.CRW"]
