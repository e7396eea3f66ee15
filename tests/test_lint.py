"""The course's own code stays tidy: `ruff check` (configured in pyproject.toml) is clean."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run([str(ruff), "check", "helpers", "autograde", "tests", "tools"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"ruff found problems (run `make lint`):\n{proc.stdout[-3000:]}"
