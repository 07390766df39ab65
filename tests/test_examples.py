"""The seed scenarios in examples/ run and their assertions hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "versioned_rows.py",
        "versioned_rows_w_versionid.py",
        "continuum_quickstart.py",
        "versioned_map.py",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    # Run against this checkout, whatever copy of the package is installed.
    path_var = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path_var},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all assertions hold" in done.stdout
