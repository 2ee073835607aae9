"""Print, as JSON lines, the widgets an application shows on screen, read through the accessibility bus (AT-SPI).

Run by the system Python (its GObject introspection has Atspi; the test venv has not): tests/gui_session.py
calls it to find buttons, thumbnails and menus by role and name, and their screen rectangles, so the GUI tests
click where the running application drew them instead of at fixed positions.

Usage: /usr/bin/python3 tests/atspi_tree.py APPLICATION_NAME
"""
import json
import sys

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi  # noqa: E402


def walk(node, depth, path, out):
    try:
        states = node.get_state_set()
        ext = node.get_extents(Atspi.CoordType.SCREEN)
        role, name, count = node.get_role_name(), node.get_name() or "", node.get_child_count()
    except Exception:  # a widget destroyed while we read it
        return
    showing = states.contains(Atspi.StateType.SHOWING)
    if showing and ext.width > 0 and ext.x > -10000:  # a container may have no extents of its own (GTK's page tab)
        out.append({"role": role, "name": name, "x": ext.x, "y": ext.y, "w": ext.width, "h": ext.height,
                    "path": path, "children": count,
                    "selected": states.contains(Atspi.StateType.SELECTED) or states.contains(Atspi.StateType.FOCUSED)})
    if showing or depth < 2:
        for i in range(count):
            child = node.get_child_at_index(i)
            if child is not None:
                walk(child, depth + 1, f"{path}/{i}", out)


def main():
    want = sys.argv[1].lower()
    # an application that does not answer (GIMP's plug-in waiting on its job) costs 1 s, not the 15 s of grace
    # libatspi gives every application new to this (short-lived) client
    Atspi.set_timeout(1000, -1)
    desktop = Atspi.get_desktop(0)
    out = []
    for i in range(desktop.get_child_count()):
        app = desktop.get_child_at_index(i)
        if app is not None and (app.get_name() or "").lower() == want:  # not a plug-in named after its host
            walk(app, 0, str(i), out)
    for node in out:
        print(json.dumps(node))


main()
