#!/usr/bin/env bash
# The long API fuzz: a real `pyops serve` in a temporary folder, schemathesis with every check and many more
# examples than CI (tests/test_schemathesis.py), then the number of cases, failures and jobs per operator.
# Usage: bench/fuzz_api.sh [EXAMPLES (default 200)] [extra schemathesis options, e.g. --seed 7]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" - "${1:-200}" "${@:2}" <<'PYEOF'
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.server_helpers import start_server
from tests.test_schemathesis import fuzz_root, run_schemathesis

examples, extra = int(sys.argv[1]), sys.argv[2:]
with tempfile.TemporaryDirectory(prefix="pyops-fuzz-") as tmp:
    root = Path(tmp) / "root"
    root.mkdir()
    fuzz_root(root)
    srv = start_server(Path(tmp) / "srv", root)
    try:
        res = run_schemathesis(srv, root, examples, *extra)
        alive = srv.proc.poll() is None
        jobs = srv.conn.json("GET", "/v1/jobs") if alive else []
    finally:
        srv.stop()
summary = res.stdout.split("SUMMARY")[-1]
print(summary.strip())
cases = re.search(r"(\d+) generated", summary)
failures = re.search(r"(\d+) (?:unique )?failures?", summary)
print(f"\ncases: {cases.group(1) if cases else '?'}, failures: {failures.group(1) if failures else 0}, "
      f"server alive: {alive}, exit {res.returncode}")
print("accepted jobs per operator:", dict(Counter(j["operator"] for j in jobs)))
print("job states:", dict(Counter(j["state"] for j in jobs)))
errors = Counter(f"{j['operator']}: {r['error'][:160]}" for j in jobs if j["state"] == "failed"
                 for r in j["results"] if r["error"])
for error, n in errors.most_common():
    print(f"  file failed ×{n}: {error}")
sys.exit(res.returncode or (not alive))
PYEOF
