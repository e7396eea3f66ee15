"""Hostile submissions: the tricks a student could play on the autograder, each with the
outcome the grading command must reach.

Every case is one YAML file here: what it tries, the cells it puts into the tiny assignment
below (grade id -> source; unnamed answer cells get the honest answer), optionally test cells
it deletes or tags, and what grading must end in -- the total score and the reason codes the
report must give (see ``autograde.grade.REASONS``)::

    what: the solution kills its own kernel
    cells:
      ex00_1_solution: |
        import os
        os._exit(0)
    expect: {score: 0, reasons: [kernel-died, tampering]}

The assignment ``00_hostile`` has two exercises (3 points): ``add`` (1 point) and ``scale``
(2 points), tested with ``helpers.checks`` like the chapters. ``tests/test_hostile.py`` grades
every case and an honest student in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell

from ..course import course_notebook, graded_cell, nbgrader_meta, with_cells_replaced

HERE = Path(__file__).resolve().parent
ASSIGNMENT = "00_hostile"
NOTEBOOK = "hostile"
MAX_SCORE = 3.0

#: What an honest student writes in the answer cells.
HONEST = {
    "ex00_1_solution": "def add(a, b):\n    return a + b",
    "ex00_2_solution": "def scale(x):\n    return 2 * x",
}


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's notebook of the tiny assignment (solutions and hidden tests)."""
    add = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
    add_test = ("checks.check_equal(add(1, 2), 3, 'add(1, 2)')\n### BEGIN HIDDEN TESTS\n"
                "checks.check_equal(add(-4, 4), 0, 'add(-4, 4)')\n### END HIDDEN TESTS")
    scale = "def scale(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    scale_test = ("checks.check_close(scale(torch.ones(3)), torch.full((3,), 2.0), "
                  "'scale(ones(3))')\n### BEGIN HIDDEN TESTS\n"
                  "checks.check_close(scale(torch.arange(4.0)), torch.arange(4.0) * 2, "
                  "'scale(arange(4))')\n### END HIDDEN TESTS")
    return course_notebook([
        new_markdown_cell("# Hostile-submission test assignment"),
        new_code_cell("import torch\nfrom helpers import checks"),
        graded_cell(add, "ex00_1_solution", solution=True),
        graded_cell(add_test, "ex00_1_test", 1),
        graded_cell(scale, "ex00_2_solution", solution=True),
        graded_cell(scale_test, "ex00_2_test", 2),
    ])


@dataclass
class Case:
    """One hostile submission and the outcome grading must reach."""

    name: str
    what: str
    cells: dict[str, str]
    score: float
    reasons: list[str]
    delete: list[str] = field(default_factory=list)
    tags: dict[str, list[str]] = field(default_factory=dict)

    def submission(self, released: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """The released notebook with this case's cells, deletions and tags."""
        nb = with_cells_replaced(released, {**HONEST, **self.cells})
        nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") not in self.delete]
        for cell in nb.cells:
            gid = nbgrader_meta(cell).get("grade_id")
            if gid in self.tags:
                cell.metadata["tags"] = list(self.tags[gid])
        return nb


def load_cases() -> list[Case]:
    """Every case in this folder, in file-name order."""
    cases = []
    for path in sorted(HERE.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        expect = data["expect"]
        cases.append(Case(path.stem, data["what"], data.get("cells", {}),
                          float(expect["score"]), list(expect["reasons"]),
                          data.get("delete", []), data.get("tags", {})))
    return cases


def honest_submission(released: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return with_cells_replaced(released, HONEST)
