"""Shared fixtures and the chapter list for the course's tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograde.course import assignments, notebook_names  # noqa: E402

ASSIGNMENTS = assignments()
NOTEBOOKS = [(a, n) for a in ASSIGNMENTS for n in notebook_names(a)]
NOTEBOOK_IDS = [a if n == a else f"{a}/{n}" for a, n in NOTEBOOKS]

