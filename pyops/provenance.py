"""Provenance of a result, embedded in it as XMP: `xmpMM:DerivedFrom` (a ResourceRef: the source's path and a
`sha256:` document id) plus the pyops namespace — operator, parameters, pyops version, time, and what the
operator measured — so every result can be traced to its source and re-made."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyops import __version__

NS_URI = "https://pyops.dev/ns/1.0/"
PREFIX = "pyops"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:  # read-only
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def record(source: Path, operator: str, params: dict[str, Any], info: dict[str, Any],
           source_name: str | None = None) -> dict[str, str]:
    """The XMP properties (exiv2 keys → text) describing how a result was made from `source` (named
    `source_name` instead of its path when given: an upload is recorded by its own file name)."""
    return {
        "Xmp.xmpMM.DerivedFrom/stRef:filePath": source_name or str(Path(source).resolve()),
        "Xmp.xmpMM.DerivedFrom/stRef:documentID": "sha256:" + sha256_file(source),
        "Xmp.xmp.CreatorTool": f"pyops {__version__}",
        f"Xmp.{PREFIX}.operator": operator,
        f"Xmp.{PREFIX}.parameters": json.dumps(jsonable(params), sort_keys=True),
        f"Xmp.{PREFIX}.version": __version__,
        f"Xmp.{PREFIX}.created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        f"Xmp.{PREFIX}.info": json.dumps(jsonable(info), sort_keys=True),
    }


def read(path: Path) -> dict[str, Any] | None:
    """Provenance of a pyops result as a dict, or None if the file carries none."""
    from pyops.io.metadata import read_xmp

    xmp = read_xmp(path)
    if f"Xmp.{PREFIX}.operator" not in xmp:
        return None
    doc = xmp.get("Xmp.xmpMM.DerivedFrom/stRef:documentID", "")
    return {
        "source": xmp.get("Xmp.xmpMM.DerivedFrom/stRef:filePath"),
        "source_sha256": doc.removeprefix("sha256:"),
        "operator": xmp[f"Xmp.{PREFIX}.operator"],
        "parameters": json.loads(xmp.get(f"Xmp.{PREFIX}.parameters", "{}")),
        "pyops_version": xmp.get(f"Xmp.{PREFIX}.version"),
        "created": xmp.get(f"Xmp.{PREFIX}.created"),
        "info": json.loads(xmp.get(f"Xmp.{PREFIX}.info", "{}")),
    }
