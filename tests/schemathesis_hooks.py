"""Schemathesis hooks for tests/test_schemathesis.py and bench/fuzz_api.sh (SCHEMATHESIS_HOOKS=tests.
schemathesis_hooks): the `path` of a generated job input becomes one of the real files under the test root
(PYOPS_FUZZ_ROOT), so generated jobs pass the roots check and reach the operators. Everything else the fuzzer
draws (operators, parameters, output, invalid bodies) is left as drawn."""
from __future__ import annotations

import os
from pathlib import Path

import schemathesis

RAW_FILE, IMAGE_FILE = "fuzz.dng", "fuzz.tif"  # written by the test under the root


@schemathesis.hook
def map_body(ctx, body):
    op = ctx.operation
    if op is None or op.path != "/v1/jobs" or op.method.upper() != "POST" or not isinstance(body, dict):
        return body
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        return body
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    raw = body.get("operator") == "twostop" or params.get("domain") == "bayer"
    root = Path(os.environ["PYOPS_FUZZ_ROOT"])
    real = str(root / (RAW_FILE if raw else IMAGE_FILE))
    paths = any(isinstance(item, dict) and isinstance(item.get("path"), str) for item in inputs)
    for item in inputs:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            item["path"] = real
        elif paths and isinstance(item, dict) and isinstance(item.get("upload"), str) and item.get("path") is None:
            item.pop("upload")  # a job takes paths or uploads, not both: this one takes paths
            item["path"] = real
    return body
