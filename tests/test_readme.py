"""README's operator reference is the registry's own description."""
from __future__ import annotations

from tests.conftest import ROOT, pyops_cli


def test_readme_operator_reference_matches_the_registry():
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- ops:begin -->\n", 1)[1].split("<!-- ops:end -->", 1)[0]
    generated = pyops_cli("ops", "--format", "markdown")
    assert generated.returncode == 0
    assert section == generated.stdout, "README is stale: regenerate it with `pyops ops --format markdown`"


def test_readme_test_command_is_what_ci_runs():
    assert "./tests/run" in (ROOT / "README.md").read_text()
    assert "./tests/run" in (ROOT / ".ci" / "run").read_text()
