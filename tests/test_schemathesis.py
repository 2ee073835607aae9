"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis, every check: no 5xx,
declared status codes and bodies, Allow on 405, schema-valid data accepted, invalid data refused, stateful links
from a created job or upload). The hooks (tests/schemathesis_hooks.py) point generated job inputs at real files
under the test root, so jobs of every operator are accepted and run. A bounded run here; bench/fuzz_api.sh runs
a longer one."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import tifffile

from pyops.registry import operators
from tests.server_helpers import start_server

HERE = Path(__file__).resolve().parent


def fuzz_root(root: Path) -> None:
    """The files the hooks give to generated jobs: a 16-bit RGB TIFF and a synthetic Bayer DNG."""
    from pyops.demo import capture, scene
    from pyops.io.dng import write_dng
    from tests.schemathesis_hooks import IMAGE_FILE, RAW_FILE

    rng = np.random.default_rng(0)
    tifffile.imwrite(root / IMAGE_FILE, (rng.random((96, 128, 3)) * 40000).astype(np.uint16), photometric="rgb")
    write_dng(root / RAW_FILE, capture(scene(96, 128), rng))


def run_schemathesis(srv, root: Path, examples: int, *extra: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("schemathesis")
    env = dict(os.environ, PYOPS_FUZZ_ROOT=str(root), SCHEMATHESIS_HOOKS="tests.schemathesis_hooks",
               PYTHONPATH=str(HERE.parent))
    return subprocess.run([str(exe), "--config-file", str(HERE / "schemathesis.toml"), "run",
                           f"{srv.info['url']}/openapi.json", "-H", f"Authorization: Bearer {srv.info['token']}",
                           "--checks", "all", "--max-examples", str(examples), "--workers", "1", *extra],
                          capture_output=True, text=True, timeout=900, env=env,
                          cwd=root.parent)  # its crash cache (.schemathesis/) goes there, not into the checkout


def test_every_check_passes_and_generated_jobs_reach_every_operator(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    fuzz_root(root)
    srv = start_server(tmp_path / "srv", root)
    try:
        res = run_schemathesis(srv, root, int(os.environ.get("PYOPS_FUZZ_EXAMPLES", "15")), "--seed", "1")
        summary = res.stdout.split("SUMMARY")[-1]
        assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
        assert "Failures:" not in summary and " passed" in summary, summary
        assert srv.proc.poll() is None  # still serving
        accepted = Counter(j["operator"] for j in srv.conn.json("GET", "/v1/jobs"))
        assert all(accepted[op.name] >= 1 for op in operators()), accepted
    finally:
        srv.stop()


def test_the_schema_states_what_the_server_does(tmp_path):
    """The findings of the first `--checks all` run, one by one: the upload body, the error shape of the
    server's own 422s, Allow on a 405 naming every method of the path, and the file name the schema allows."""
    import json
    import urllib.parse

    root = tmp_path / "root"
    root.mkdir()
    srv = start_server(tmp_path / "srv", root)
    try:
        conn = srv.conn
        schema = conn.json("GET", "/openapi.json")
        upload = schema["paths"]["/v1/uploads"]["post"]
        assert upload["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
        detail = schema["paths"]["/v1/jobs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
        assert {"type": "string"} in detail["properties"]["detail"]["anyOf"]
        assert {"400", "401", "403", "404", "413", "422"} <= set(schema["paths"]["/v1/jobs"]["post"]["responses"])
        links = schema["paths"]["/v1/jobs"]["post"]["responses"]["202"]["links"]
        assert {link["parameters"]["job_id"] for link in links.values()} == {"$response.body#/id"}
        # 405: Allow names GET and DELETE of /v1/jobs/{id}, not just the first route's method
        c = conn._conn(10)
        c.request("PUT", "/v1/jobs/0123456789abcdef", headers=conn.headers)
        resp = c.getresponse()
        resp.read()
        assert resp.status == 405 and resp.getheader("Allow") == "DELETE, GET"
        # a 255-character name is what the schema allows: accepted, shortened to 200 bytes, suffix kept
        name = "é" * 251 + ".tif"
        status, body = conn.request("POST", "/v1/uploads?" + urllib.parse.urlencode({"filename": name}), b"x",
                                    {"Content-Type": "application/octet-stream"})
        assert status == 201, body
        stored = json.loads(body)["filename"]
        assert stored.endswith(".tif") and len(stored.encode()) <= 200 and stored.startswith("é" * 90)
        # names the schema refuses, the server refuses too (a folder, a hidden file)
        for bad in ("sub/x.tif", ".hidden.tif"):
            status, _ = conn.request("POST", "/v1/uploads?" + urllib.parse.urlencode({"filename": bad}), b"x",
                                     {"Content-Type": "application/octet-stream"})
            assert status == 422, bad
    finally:
        srv.stop()
