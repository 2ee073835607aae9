--[[
  pyops for darktable: image operators for photographers (binning, luminance boost, deconvolution, PSFs)

  Copyright the pyops authors. Licence: GPL-3.0-or-later.

  DESCRIPTION
    A module "pyops" (lighttable: right panel; darkroom: left panel) with an operator chooser and each operator's
    parameters and a "run on selected images" button ("run on this image" in the darkroom), a "pyops: <operator>"
    button per operator in the selected image[s] module, a shortcut for each operator, and an export storage
    "pyops". Each selected image is exported as a 32-bit TIFF (or, for raw-domain operators such as Bayer
    binning and twostop, its raw file is used), processed by `pyops client run …` (which talks to the local
    pyops operator server and starts it if needed), and the result is imported next to the original, grouped
    with it, tagged `pyops|<operator>`, with the original's tags, rating, colour labels, title and description.

    The operators and their parameters are not written here: they come from `pyops client schema --format lua`,
    the same registry the command line, the server and the GIMP plug-in use.

  REQUIRED SOFTWARE
    pyops (./install.sh from the pyops checkout installs it and this script)

  USAGE
    * ./install.sh adds `require "pyops/pyops"` to darktable's luarc (or enable it in the script manager)
    * lighttable → pyops module: choose an operator, set its parameters, select images, "run on selected images"
      — or press "pyops: <operator>" in the selected image[s] module (the same parameters)
    * darkroom → pyops module (left panel): "run on this image" processes the image being edited; the result is
      imported and grouped with it, and the darkroom stays on it
    * or assign a shortcut to "pyops: run <operator>", or export with the storage "pyops"
    * preferences → lua options: path to pyops, where results go, output format, grouping, metadata
    * shaken photo: crop a virtual copy to a sharp-edged detail, run psf_estimate on it (the PSF goes to the
      pyops PSF library, its picture into the group), then deconvolve the original with that PSF, which the
      psf chooser now offers
]]

local dt = require "darktable"

local MODULE = "pyops"
local DEFAULT_PYOPS = "@PYOPS@"  -- install.sh writes the installed `pyops` here

if (dt.configuration.api_version_major or 0) < 9 then
  dt.print_error("pyops needs darktable 4.2 or newer (Lua API 9.0)")
  dt.print("pyops needs darktable 4.2 or newer")
  return {}
end

local PS = "/"
local script_data = {}
script_data.metadata = {
  name = "pyops",
  purpose = "image operators for photographers: binning, luminance boost, deconvolution",
  author = "the pyops authors",
}
script_data.destroy = nil
script_data.destroy_method = nil
script_data.restart = nil
script_data.show = nil

local M = {
  log = {},          -- every message shown, newest last (tests read it)
  history = {},      -- one entry per run: {operator, imported = {...}, errors = {...}, cancelled}
  ops = {},          -- the operator schemas, in registry order
  by_name = {},
  running = nil,     -- {pid_file = ..., cancelled = bool} while a client runs
}

-- messages ------------------------------------------------------------------------------------------------

local function notify(msg)
  table.insert(M.log, msg)
  dt.print_log("pyops: " .. msg)
  dt.print(msg)
end

-- shell quoting: everything inside single quotes, a single quote as '\'' (safe for spaces, quotes, UTF-8)
local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function file_size(path)  -- bytes, 0 if unreadable
  local f = io.open(path, "rb")
  if not f then return 0 end
  local size = f:seek("end")
  f:close()
  return size or 0
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function basename(path) return path:match("([^/]+)$") or path end

--- A field of `pyops client`'s line protocol: it writes TAB, newline, CR and backslash as \t \n \r \\.
local FIELD_ESCAPES = {t = "\t", n = "\n", r = "\r", ["\\"] = "\\"}
local function unescape_field(s) return (s:gsub("\\(.)", FIELD_ESCAPES)) end

local function stem(name) return (name:gsub("%.[^.]*$", "")) end

-- preferences -----------------------------------------------------------------------------------------------

dt.preferences.register(MODULE, "executable", "file", "pyops: pyops command",
  "the pyops program (installed by pyops' install.sh)", DEFAULT_PYOPS)
dt.preferences.register(MODULE, "destination", "enum", "pyops: where results go",
  "next to the original, or in a 'pyops' folder beside it", "next to the original",
  "next to the original", "in a pyops sub-folder")
dt.preferences.register(MODULE, "format", "enum", "pyops: output format",
  "DNG where possible keeps raw-domain binning a raw; the others always write TIFF", "DNG where possible",
  "DNG where possible", "16-bit TIFF", "32-bit float TIFF")
dt.preferences.register(MODULE, "group", "bool", "pyops: group results with the original",
  "put each result in its original's group", true)
dt.preferences.register(MODULE, "copy_metadata", "bool", "pyops: copy metadata",
  "copy tags, rating, colour labels, title and description from the original", true)
dt.preferences.register(MODULE, "roots", "string", "pyops: folders the pyops server may use",
  "':'-separated folders with your photos, for a server that darktable starts (default: your home)", "")

local function pref(name, kind) return dt.preferences.read(MODULE, name, kind) end

local function pyops_exe()
  local exe = pref("executable", "file")
  if exe == nil or exe == "" then exe = DEFAULT_PYOPS end
  return exe
end

-- the operator schemas, from the registry through `pyops client schema` --------------------------------------

local function load_schema()
  local p = io.popen(quote(pyops_exe()) .. " client schema --format lua 2>/dev/null")
  local text = p and p:read("a") or ""
  if p then p:close() end
  local chunk = text ~= "" and load(text, "pyops schema", "t", {})
  local ok, ops = false, nil
  if chunk then ok, ops = pcall(chunk) end
  if not ok or type(ops) ~= "table" then
    return nil
  end
  M.ops, M.by_name = ops, {}
  for _, op in ipairs(ops) do M.by_name[op.name] = op end
  return ops
end

local function wants_raw(op, params)
  if op.raw_when == true then return true end
  if type(op.raw_when) ~= "table" then return false end
  for name, values in pairs(op.raw_when) do
    for _, v in ipairs(values) do
      if tostring(params[name]) == tostring(v) then return true end
    end
  end
  return false
end

-- the round trip (the one core function the button, the shortcuts and the storage call) ---------------------

local function output_dir(image)
  if pref("destination", "enum") == "in a pyops sub-folder" then
    local dir = image.path .. PS .. "pyops"
    dt.control.execute("mkdir -p " .. quote(dir))
    return dir
  end
  return image.path
end

local function copy_metadata(src, dst)
  for _, tag in ipairs(dt.tags.get_tags(src)) do
    if not tag.name:find("^darktable|") then dt.tags.attach(tag, dst) end
  end
  dst.rating = src.rating
  for _, label in ipairs({"red", "yellow", "green", "blue", "purple"}) do dst[label] = src[label] end
  for _, field in ipairs({"title", "description", "creator", "publisher", "rights"}) do
    local ok, value = pcall(function() return src[field] end)
    if ok and value and value ~= "" then dst[field] = value end
  end
end

-- a result must be an image file (TIFF/DNG, PNG or JPEG signature) before darktable is asked to import it
local function looks_like_image(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(4) or ""
  f:close()
  return head == "II*\0" or head == "MM\0*" or head == "\137PNG" or head:sub(1, 3) == "\255\216\255"
end

local function import_result(original, path, op_name)
  if not file_exists(path) or file_size(path) == 0 then
    return nil, "result missing: " .. path
  end
  if not looks_like_image(path) then
    return nil, "result is not an image file: " .. path
  end
  local image = dt.database.import(path)
  if not image then return nil, "darktable could not import " .. path end
  if pref("group", "bool") then image:group_with(original) end
  if pref("copy_metadata", "bool") then copy_metadata(original, image) end
  dt.tags.attach(dt.tags.create("pyops|" .. op_name), image)
  return image
end

local function client_args(op, params)
  local args = {}
  for _, p in ipairs(op.params) do
    local v = params[p.name]
    if v ~= nil and tostring(v) ~= "" then
      table.insert(args, "--" .. p.name:gsub("_", "-") .. " " .. quote(tostring(v)))
    end
  end
  local fmt = pref("format", "enum")
  if fmt == "16-bit TIFF" then table.insert(args, "--format tif16")
  elseif fmt == "32-bit float TIFF" then table.insert(args, "--format tif32") end
  return table.concat(args, " ")
end

-- Start `pyops client run` in the background (so darktable stays responsive and the job's cancel button can
-- run), then follow its output file line by line.
local function follow_client(cmd_args, inputs, tmpdir, job, opts, on_line)
  local log, pid_file, rc_file = tmpdir .. "/client.log", tmpdir .. "/client.pid", tmpdir .. "/client.rc"
  local script = tmpdir .. "/run.sh"
  local env = ""
  local roots = pref("roots", "string")
  if roots ~= nil and roots ~= "" then env = "PYOPS_ALLOW_ROOTS=" .. quote(roots) .. " " end
  local sh = io.open(script, "w")
  sh:write("#!/bin/sh\n",
    env, quote(pyops_exe()), " client run ", cmd_args, " ", table.concat(inputs, " "),
    " > ", quote(log), " 2> ", quote(tmpdir .. "/client.err"), " &\n",
    "echo $! > ", quote(pid_file), "\n",
    "wait $!\n",
    "echo $? > ", quote(rc_file), "\n")
  sh:close()
  dt.control.execute("sh " .. quote(script) .. " &")
  M.running = {pid_file = pid_file, cancelled = false}
  local offset, pending = 0, ""
  local function drain()
    local f = io.open(log, "rb")
    if not f then return end
    f:seek("set", offset)
    local chunk = f:read("a") or ""
    offset = offset + #chunk
    f:close()
    pending = pending .. chunk
    while true do
      local line, rest = pending:match("^([^\n]*)\n(.*)$")
      if not line then break end
      pending = rest
      on_line(line)
    end
  end
  while not file_exists(rc_file) do
    drain()
    dt.control.sleep(100)
  end
  drain()
  local rc = tonumber((read_file(rc_file) or ""):match("%d+")) or -1
  local err = read_file(tmpdir .. "/client.err") or ""
  local cancelled = M.running.cancelled
  M.running = nil
  return rc, err, cancelled
end

--- Cancel the running client (the job's cancel button and tests use this): SIGTERM makes `pyops client`
--- cancel its jobs on the server, which leaves no result file behind.
function M.cancel()
  local run = M.running
  if not run then return false end
  run.cancelled = true
  local pid = (read_file(run.pid_file) or ""):match("%d+")
  if pid then dt.control.execute("kill -TERM " .. pid) end
  return true
end

--- Run operator `op_name` with `params` on `items` ({image = dt image, path = optional exported file}) and
--- import the results. Returns {imported = {dt images}, errors = {messages}, cancelled = bool, finished = true};
--- the same table is in M.history from the start, with `finished` set at the end.
function M.run_operator(op_name, items, params, opts)
  opts = opts or {}
  local run = {operator = op_name, imported = {}, errors = {}, cancelled = false}
  table.insert(M.history, run)
  local op = M.by_name[op_name]
  if not op then
    table.insert(run.errors, "unknown operator " .. tostring(op_name))
    notify("pyops: unknown operator " .. tostring(op_name))
    return run
  end
  if #items == 0 then
    notify("pyops: no image selected")
    return run
  end
  local raw = wants_raw(op, params)
  local tmpdir = dt.configuration.tmp_dir .. PS .. "pyops-" .. os.time() .. "-" .. math.random(100000, 999999)
  dt.control.execute("mkdir -p " .. quote(tmpdir))
  local job = dt.gui.create_job("pyops " .. op_name, true, function() M.cancel() end)

  -- inputs: the raw file itself, the file the export storage made, or a 32-bit TIFF exported here, into a
  -- hidden folder beside the result (inside the folders the server may use), removed afterwards
  local by_input, groups, order, exports = {}, {}, {}, {}
  for i, item in ipairs(items) do
    local image, path = item.image, item.path
    if raw then
      path = image.path .. PS .. image.filename
    elseif not path then
      local name = stem(image.filename) .. (image.duplicate_index > 0 and ("_v" .. image.duplicate_index) or "")
      local export_dir = output_dir(image) .. PS .. ".pyops-export-" .. basename(tmpdir)
      dt.control.execute("mkdir -p " .. quote(export_dir))
      exports[export_dir] = true
      path = export_dir .. PS .. name .. ".tif"
      local fmt = dt.new_format("tiff")
      fmt.bpp = 32
      fmt:write_image(image, path)  -- the return value differs between darktable versions: check the file
      if not file_exists(path) then
        table.insert(run.errors, image.filename .. ": export failed")
        notify("pyops: " .. image.filename .. ": export failed")
        path = nil
      end
    end
    if path then
      by_input[path] = image
      local dir = output_dir(image)
      if not groups[dir] then groups[dir] = {} table.insert(order, dir) end
      table.insert(groups[dir], path)
    end
    job.percent = 0.05 * i / #items
  end

  local done_before = 0
  for _, dir in ipairs(order) do
    local inputs = {}
    for _, p in ipairs(groups[dir]) do table.insert(inputs, quote(p)) end
    local share = #groups[dir] / #items
    local args = op_name .. " " .. client_args(op, params) .. " -o " .. quote(dir)
    local rc, err, cancelled = follow_client(args, inputs, tmpdir, job, opts, function(line)
      local kind, a, b = line:match("^(%a+)\t([^\t]*)\t?(.*)$")
      if kind then a, b = unescape_field(a), unescape_field(b) end
      if kind == "progress" then
        job.percent = math.min(0.99, 0.05 + 0.95 * (done_before + share * (tonumber(a) or 0)))
        if opts.on_progress then opts.on_progress(tonumber(a) or 0, b) end
      elseif kind == "result" then
        local image, why = import_result(by_input[a], b, op_name)
        if image then table.insert(run.imported, image) else
          table.insert(run.errors, why)
          notify("pyops: " .. why)
        end
      elseif kind == "error" then
        local name = by_input[a] and by_input[a].filename or basename(a)
        table.insert(run.errors, name .. ": " .. b)
        notify("pyops: " .. name .. ": " .. b)
      end
    end)
    done_before = done_before + share
    if cancelled then
      run.cancelled = true
      break
    end
    if rc ~= 0 and rc ~= 1 then  -- 1 = some files failed (already reported); anything else: the client itself
      local why = err:match("([^\n]+)\n?$") or ("pyops client exited with status " .. rc)
      table.insert(run.errors, why)
      notify("pyops: " .. why)
    end
  end
  for export_dir in pairs(exports) do dt.control.execute("rm -rf " .. quote(export_dir)) end
  if op.output == "psf" and #run.imported > 0 then M.refresh_psf_choices() end
  job.valid = false
  run.finished = true
  if run.cancelled then
    notify(string.format("pyops %s: cancelled, %d imported", op_name, #run.imported))
  else
    notify(string.format("pyops %s: %d imported, %d failed", op_name, #run.imported, #run.errors))
  end
  return run
end

-- the lighttable module --------------------------------------------------------------------------------------

local widgets = {}      -- op name → {param name → widget}
local suggesting = {}   -- {widget, param} of the editable choosers fed from the PSF library
local chooser, stack

-- the entries of an editable chooser: the default, then `names`; keeps what was chosen if it is still there
local function fill_choices(w, default, names)
  local current = w.value
  for i = #w, 1, -1 do w[i] = nil end
  w[1] = tostring(default)
  local selected = 1
  for i, n in ipairs(names) do
    w[i + 1] = n
    if n == current then selected = i + 1 end
  end
  w.selected = selected
end

--- The names in the pyops PSF library (`pyops psf list`).
function M.psf_names()
  local names = {}
  local p = io.popen(quote(pyops_exe()) .. " psf list 2>/dev/null")
  if p then
    for line in p:lines() do table.insert(names, line:match("^([^\t]+)")) end
    p:close()
  end
  return names
end

--- Offer the PSF library's current names in every chooser that suggests them (after psf_estimate saved one).
function M.refresh_psf_choices()
  local names = M.psf_names()
  for _, s in ipairs(suggesting) do fill_choices(s.widget, s.param.default, names) end
  return names
end

--- The entries the module offers for parameter `param` of `op_name` (for choosers fed from the PSF library).
function M.choices(op_name, param)
  for _, s in ipairs(suggesting) do
    if s.op == op_name and s.param.name == param then
      local out = {}
      for i = 1, #s.widget do table.insert(out, s.widget[i]) end
      return out
    end
  end
end

local function widget_for(p, op_name)
  local tip = p.help .. (p.unit ~= "" and (" (" .. p.unit .. ")") or "")
  if p.suggestions then  -- a name from the PSF library, or anything typed (a spec, a file)
    local w = dt.new_widget("combobox"){label = p.name, tooltip = tip, editable = true}
    table.insert(suggesting, {widget = w, param = p, op = op_name})
    fill_choices(w, p.default, p.suggestions)
    return w, function() return w.value end
  elseif p.type == "choice" then
    local w = dt.new_widget("combobox"){label = p.name, tooltip = tip}
    local selected = 1
    for i, c in ipairs(p.choices) do
      w[i] = tostring(c)
      if tostring(c) == tostring(p.default) then selected = i end
    end
    w.selected = selected
    return w, function() return w.value end
  elseif p.type == "bool" then
    local w = dt.new_widget("check_button"){label = p.name, tooltip = tip, value = p.default == true}
    return w, function() return w.value and "true" or "false" end
  elseif (p.type == "int" or p.type == "float") and p.minimum and p.maximum and not p.special then
    local int = p.type == "int"
    local w = dt.new_widget("slider"){
      label = p.name, tooltip = tip, hard_min = p.minimum, hard_max = p.maximum, soft_min = p.minimum,
      soft_max = p.maximum, step = int and 1 or (p.maximum - p.minimum) / 100, digits = int and 0 or 2}
    w.value = tonumber(p.default) or p.minimum  -- after the limits, or it is clamped to the default range
    return w, function() return int and string.format("%d", math.floor(w.value + 0.5)) or string.format("%.4g", w.value) end
  end
  local w = dt.new_widget("entry"){text = tostring(p.default), tooltip = tip ..
    (p.special and (" — a number or " .. table.concat(p.special, ", ")) or ""), editable = true}
  return w, function() return w.text end
end

--- The parameters currently set in the module for `op_name`.
function M.current_params(op_name)
  local params = {}
  for name, get in pairs(widgets[op_name] or {}) do params[name] = get() end
  return params
end

local function selected_operator()
  return M.ops[chooser and chooser.selected or 1].name
end

--- The images an action without images of its own works on: in the darkroom the image being edited, elsewhere
--- the ones darktable acts on (the selection, or the thumbnail under the mouse).
function M.acting_on()
  if dt.gui.current_view().id == "darkroom" then return {dt.gui.views.darkroom.display_image()} end
  return dt.gui.action_images
end

--- Run `op_name` on `images` (default: M.acting_on()) with the module's parameters for it.
function M.run_on(op_name, images)
  local items = {}
  for _, image in ipairs(images or M.acting_on()) do table.insert(items, {image = image}) end
  return M.run_operator(op_name, items, M.current_params(op_name))
end

--- Run `op_name` (default: the module's choice) on the selected images (in the darkroom: the image being
--- edited) with the module's parameters.
function M.run_selected(op_name)
  return M.run_on(op_name or selected_operator())
end

--- The "selected image[s]" module's button callbacks, by action name (what its buttons call with the selection).
M.actions = {}

local run_button

-- the module's button says what it will process: the selection in the lighttable, the edited image in the darkroom
local function label_run_button(view)
  if (view or dt.gui.current_view()).id == "darkroom" then
    run_button.label, run_button.tooltip = "run on this image", "process the image being edited and import the result"
  else
    run_button.label, run_button.tooltip = "run on selected images", "process the selected images and import the results"
  end
end

local function build_module()
  local boxes = {}
  for _, op in ipairs(M.ops) do
    local box = {orientation = "vertical"}
    widgets[op.name] = {}
    for _, p in ipairs(op.params) do
      local w, get = widget_for(p, op.name)
      widgets[op.name][p.name] = get
      if p.type ~= "choice" and p.type ~= "bool" and not p.suggestions and not ((p.type == "int" or p.type == "float") and p.minimum and p.maximum and not p.special) then
        table.insert(box, dt.new_widget("label"){label = p.name})
      end
      table.insert(box, w)
    end
    table.insert(boxes, dt.new_widget("box")(box))
  end
  stack = dt.new_widget("stack")(boxes)
  local summaries = {}
  for _, op in ipairs(M.ops) do table.insert(summaries, op.name .. ": " .. op.summary) end
  chooser = dt.new_widget("combobox"){
    label = "operator", tooltip = table.concat(summaries, "\n"),
    changed_callback = function(self)
      stack.active = self.selected
      dt.preferences.write(MODULE, "operator", "string", self.value)
    end}
  local last = dt.preferences.read(MODULE, "operator", "string")
  for i, op in ipairs(M.ops) do
    chooser[i] = op.name
    if op.name == last then chooser.selected = i end
  end
  if chooser.selected == 0 then chooser.selected = 1 end
  stack.active = chooser.selected
  run_button = dt.new_widget("button"){clicked_callback = function() M.run_selected() end}
  label_run_button()
  return dt.new_widget("box"){orientation = "vertical", chooser, stack, run_button}
end

-- registration ------------------------------------------------------------------------------------------------

local registered_events = {}
local MODULE_VIEWS = {[dt.gui.views.lighttable] = {"DT_UI_CONTAINER_PANEL_RIGHT_CENTER", 700},
                      [dt.gui.views.darkroom] = {"DT_UI_CONTAINER_PANEL_LEFT_CENTER", 700}}

-- one button per operator in lighttable's "selected image[s]" module (Lua API 9: name, label, callback, tooltip)
local function register_actions()
  for _, op in ipairs(M.ops) do
    local name = "pyops_" .. op.name
    local callback = function(event, images) M.run_on(op.name, images) end
    local ok, err = pcall(dt.gui.libs.image.register_action, name, "pyops: " .. op.name, callback,
      op.summary .. " — with the parameters set in the pyops module")
    if ok then M.actions[name] = callback else notify("pyops: cannot add " .. name .. " to selected images: " .. tostring(err)) end
  end
end

local function destroy_actions()
  for name in pairs(M.actions) do pcall(dt.gui.libs.image.destroy_action, name) end
  M.actions = {}
end

local function register_all()
  local module_widget = build_module()
  dt.register_lib(MODULE, "pyops", true, false, MODULE_VIEWS, module_widget,
    function(self, old_view, new_view) label_run_button(new_view) end, nil)

  for _, op in ipairs(M.ops) do
    local event = "pyops_" .. op.name
    dt.register_event(event, "shortcut", function(ev, shortcut) M.run_selected(op.name) end,
      "pyops: run " .. op.name)
    table.insert(registered_events, event)
  end
  register_actions()

  -- export storage: the export module's format, size and style feed the operator chosen in the pyops module
  dt.register_storage(MODULE, "pyops",
    function(storage, image, format, filename, number, total, high_quality, extra)
      table.insert(extra.items, {image = image, path = filename})
    end,
    function(storage, image_table, extra)
      M.run_operator(extra.op, extra.items, extra.params)
    end,
    function(storage, format) return format.extension == "tif" end,
    function(storage, format, images, high_quality, extra)
      extra.items, extra.op = {}, selected_operator()
      extra.params = M.current_params(extra.op)
      return nil
    end,
    dt.new_widget("label"){label = "runs the operator chosen in the pyops module (TIFF exports)"})
end

local function destroy()
  dt.gui.libs[MODULE].visible = false
  destroy_actions()
  for _, event in ipairs(registered_events) do pcall(dt.destroy_event, event, "shortcut") end
  pcall(dt.destroy_storage, MODULE)
end

local function restart()
  dt.gui.libs[MODULE].visible = true
  if next(M.actions) == nil then register_actions() end
end

if load_schema() then
  register_all()
  script_data.destroy = destroy
  script_data.destroy_method = "hide"
  script_data.restart = restart
  script_data.show = restart
else
  -- first run without a working pyops: one line saying what to do, in a toast and in the module itself
  local what = "pyops: cannot run " .. pyops_exe() .. " — install it with ./install.sh in the pyops checkout, "
    .. "or set its path in preferences → lua options"
  notify(what)
  dt.register_lib(MODULE, "pyops", true, false, MODULE_VIEWS,
    dt.new_widget("label"){label = what:gsub(" — ", "\n"):gsub(", or ", ",\nor "), selectable = true}, nil, nil)
  script_data.destroy = function() dt.gui.libs[MODULE].visible = false end
  script_data.destroy_method = "hide"
end

script_data.pyops = M
return script_data
