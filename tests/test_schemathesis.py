"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis): no 5xx, ever.
A bounded run here; bench/fuzz_api.sh runs a longer one."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.server_helpers import start_server


def test_no_server_error_for_any_generated_request(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    srv = start_server(tmp_path / "srv", root)
    try:
        exe = Path(sys.executable).with_name("schemathesis")
        res = subprocess.run([str(exe), "run", f"{srv.info['url']}/openapi.json", "-H",
                              f"Authorization: Bearer {srv.info['token']}", "--checks", "not_a_server_error",
                              "--max-examples", os.environ.get("PYOPS_FUZZ_EXAMPLES", "8"), "--seed", "1"],
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        assert " passed" in res.stdout and "failed" not in res.stdout.split("Test cases:")[-1]
        assert srv.proc.poll() is None  # still serving
    finally:
        srv.stop()
