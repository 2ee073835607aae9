#!/usr/bin/env bash
# Install pyops for this user, idempotently.
#   ./install.sh               virtualenv in ${PYOPS_PREFIX:-${XDG_DATA_HOME:-~/.local/share}/pyops}, `pyops` linked into ~/.local/bin
#   ./install.sh --dev         editable install with the test tools in .venv/ of this checkout
#   ./install.sh --uninstall   remove what ./install.sh installed (virtualenv, link, darktable script, GIMP plug-in)
# The user install also puts the darktable script in ${DARKTABLE_CONFIGDIR:-~/.config/darktable}/lua/pyops/
# with one `require "pyops/pyops"` line in its luarc (when darktable or its config folder is there), and the
# GIMP 3 plug-in in ${GIMP3_DIRECTORY:-~/.config/GIMP/3.0}/plug-ins/pyops-gimp/ (when GIMP 3 or that folder is).
# Environment: PYOPS_PREFIX (virtualenv folder), PYTHON (interpreter, default python3), DARKTABLE_CONFIGDIR,
# GIMP3_DIRECTORY.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${PYOPS_PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}/pyops}
bindir=$HOME/.local/bin
python=${PYTHON:-python3}
dtconf=${DARKTABLE_CONFIGDIR:-${XDG_CONFIG_HOME:-$HOME/.config}/darktable}
dtline='require "pyops/pyops"'
gimpdir=${GIMP3_DIRECTORY:-${XDG_CONFIG_HOME:-$HOME/.config}/GIMP/3.0}
mode=user

for arg in "$@"; do
  case $arg in
    --dev) mode=dev ;;
    --uninstall) mode=uninstall ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'pyops install: %s\n' "$*"; }

need_python() {
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "install.sh: $python not found; pyops needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if ! "$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: $("$python" -V 2>&1) cannot be used; pyops needs Python >= 3.11 with the venv module" >&2
    exit 1
  fi
}

make_venv() {  # $1 = folder; reuses a working one
  if [ ! -x "$1/bin/python" ] || ! "$1/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    rm -rf "$1"
    "$python" -m venv "$1"
  fi
}

install_darktable() {  # $1 = the pyops command the script runs
  if ! command -v darktable >/dev/null 2>&1 && [ ! -d "$dtconf" ]; then
    say "darktable not found: its script is not installed (run ./install.sh again after installing darktable)"
    return
  fi
  mkdir -p "$dtconf/lua/pyops"
  local script
  script=$(<"$here/lua/pyops.lua")
  printf '%s\n' "${script//@PYOPS@/$1}" > "$dtconf/lua/pyops/pyops.lua.tmp"
  mv "$dtconf/lua/pyops/pyops.lua.tmp" "$dtconf/lua/pyops/pyops.lua"
  touch "$dtconf/luarc"
  grep -qxF "$dtline" "$dtconf/luarc" || printf '%s\n' "$dtline" >> "$dtconf/luarc"
  say "darktable script: $dtconf/lua/pyops/pyops.lua (lighttable → pyops)"
}

uninstall_darktable() {
  if [ -f "$dtconf/lua/pyops/pyops.lua" ]; then rm -rf "$dtconf/lua/pyops"; say "removed $dtconf/lua/pyops"; fi
  if [ -f "$dtconf/luarc" ] && grep -qxF "$dtline" "$dtconf/luarc"; then
    grep -vxF "$dtline" "$dtconf/luarc" > "$dtconf/luarc.tmp" || true
    mv "$dtconf/luarc.tmp" "$dtconf/luarc"
  fi
}

install_gimp() {  # $1 = the pyops command the plug-in starts the server with
  if ! command -v gimp-3.0 >/dev/null 2>&1 && ! command -v gimp >/dev/null 2>&1 && [ ! -d "$gimpdir" ]; then
    say "GIMP 3 not found: its plug-in is not installed (run ./install.sh again after installing GIMP 3)"
    return
  fi
  local dir=$gimpdir/plug-ins/pyops-gimp script
  mkdir -p "$dir"
  script=$(<"$here/plugin/pyops-gimp/pyops-gimp.py")
  printf '%s\n' "${script//@PYOPS@/$1}" > "$dir/pyops-gimp.py.tmp"
  chmod 755 "$dir/pyops-gimp.py.tmp"
  mv "$dir/pyops-gimp.py.tmp" "$dir/pyops-gimp.py"
  "$1" client schema --format json > "$dir/schema.json.tmp"  # the procedures' arguments, read at registration
  mv "$dir/schema.json.tmp" "$dir/schema.json"
  say "GIMP plug-in: $dir (Filters → Enhance → pyops)"
}

case $mode in
  uninstall)
    uninstall_darktable
    if [ -f "$gimpdir/plug-ins/pyops-gimp/pyops-gimp.py" ]; then
      rm -rf "$gimpdir/plug-ins/pyops-gimp"
      say "removed $gimpdir/plug-ins/pyops-gimp"
    fi
    link=$bindir/pyops
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$prefix/bin/pyops" ]; then rm -f "$link"; say "removed $link"; fi
    if [ -f "$prefix/.pyops-install" ]; then rm -rf "$prefix"; say "removed $prefix"; fi
    exit 0
    ;;
  dev)
    need_python
    make_venv "$here/.venv"
    "$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here[test]"
    say "development environment ready: $here/.venv (run the tests with ./tests/run)"
    ;;
  user)
    need_python
    if [ -e "$prefix" ] && [ ! -f "$prefix/.pyops-install" ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ]; then
      echo "install.sh: $prefix exists and was not made by install.sh; set PYOPS_PREFIX to another folder" >&2
      exit 1
    fi
    make_venv "$prefix"
    touch "$prefix/.pyops-install"
    "$prefix/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$here"
    mkdir -p "$bindir"
    ln -sfn "$prefix/bin/pyops" "$bindir/pyops"
    install_darktable "$prefix/bin/pyops"
    install_gimp "$prefix/bin/pyops"
    say "installed $("$prefix/bin/pyops" --version) in $prefix"
    say "command: $bindir/pyops"
    case ":$PATH:" in *":$bindir:"*) ;; *) say "add $bindir to your PATH to type just 'pyops'";; esac
    ;;
esac
