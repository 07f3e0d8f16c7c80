"""Workflow code is deterministic, and the lint is what checks it: the worker's sandbox
passes every module through (o2a/workflow_runner.py), so only ruff's banned-api rule
(pyproject.toml) stands between a workflow and a clock, randomness or the environment."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_CODE = {
    "models",
    "tracking",
    "revision",
    "ids",
    "visibility",
    "errors",
    "ports",
    "subscriptions",
    "faults",
}
"""The o2a modules whose code runs inside workflows, linted as workflow code."""

UNDETERMINED = {
    "clock": "import datetime\n\nx = datetime.datetime.now()\n",
    "imported clock": "from datetime import datetime\n\nx = datetime.now()\n",
    "monotonic": "from time import monotonic\n\nx = monotonic()\n",
    "randomness": "import random\n\nx = random.random()\n",
    "uuid": "import uuid\n\nx = uuid.uuid4()\n",
    "environment": "import os\n\nx = os.environ.get('X')\n",
    "file": "from pathlib import Path\n\nx = Path('catalog.json').read_text()\n",
    "network": "import urllib.request\n\nx = urllib.request.urlopen('http://crm')\n",
}


def lint(code: str, as_file: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--stdin-filename", as_file, "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("kind", sorted(UNDETERMINED))
def test_workflow_code_may_not_read_clocks_randomness_or_the_environment(kind: str) -> None:
    for where in ("workflows/probe.py", "o2a/tracking.py"):
        result = lint(UNDETERMINED[kind], where)
        assert result.returncode == 1 and "TID251" in result.stdout, (where, result.stdout)
    assert lint(UNDETERMINED[kind], "activities/probe.py").returncode == 0


def test_every_o2a_module_workflows_import_is_linted_as_workflow_code() -> None:
    imported: set[str] = set()
    for source in (ROOT / "workflows").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "o2a":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("o2a."):
                imported.add((node.module or "").removeprefix("o2a.").split(".")[0])
            elif isinstance(node, ast.Import):
                imported |= {
                    a.name.removeprefix("o2a.").split(".")[0]
                    for a in node.names
                    if a.name.startswith("o2a.")
                }
    assert imported <= WORKFLOW_CODE, imported - WORKFLOW_CODE
    for module in WORKFLOW_CODE:
        assert lint(UNDETERMINED["clock"], f"o2a/{module}.py").returncode == 1, module
