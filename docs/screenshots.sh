#!/usr/bin/env bash
# Regenerate the README's screenshots from the tests that click through the hosts, so they show the product as
# it is: darktable 5.0's selected-images action, darkroom module and first-run message come from
# tests/test_darktable_gui.py; GIMP's dialog and progress from tests/test_gimp_gui.py. Needs what .ci/run installs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYOPS_SCREENSHOTS="$PWD/docs"
.venv/bin/python -m pytest -q tests/test_darktable_gui.py -k "5.0"
.venv/bin/python -m pytest -q tests/test_gimp_gui.py
