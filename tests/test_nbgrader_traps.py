"""nbgrader's known traps, each closed by nbgrader_config.py and proven here on a tiny course.

- a test cell that writes to stderr scores 0 (so harmless chatter is filtered by IgnorePattern);
- a test cell tagged `skip-execution` (or the course's skip tag) would be skipped: full marks
  for nothing -- the tags are stripped from graded cells before execution;
- a cell that never ends is interrupted by the per-cell time-out and scored;
- a deleted test cell comes back (OverwriteCells.add_missing_cells), as valid Python;
- heavy demo cells tagged `autograde-skip` are skipped, and the kernel knows it is grading.
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from autograde.course import Course, course_notebook, nbgrader_meta, with_cells_replaced
from autograde.course import graded_cell as graded
from autograde.policy import SKIP_TAG

pytestmark = pytest.mark.slow  # one nbgrader run (a module fixture) serves every test here

A = "00_traps"
SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
FILLED = "def add(a, b):\n    return a + b"


def trap_notebook() -> nbformat.NotebookNode:
    return course_notebook([
        new_markdown_cell("# Traps"),
        new_code_cell("import os, sys, warnings"),
        graded(SOLUTION, "ex00_1_solution", solution=True),
        graded("assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n"
               "### END HIDDEN TESTS", "ex00_1_test", 1),
        new_code_cell("HEAVY_DEMO_RAN = True", metadata={"tags": [SKIP_TAG]}),
        graded("assert 'HEAVY_DEMO_RAN' not in globals()\n"
               "assert os.environ.get('NBGRADER_EXECUTION') == 'autograde'", "ex00_2_test", 1),
        graded("warnings.warn('a warning in a test cell')", "ex00_3_test", 1),
        graded("print('Matplotlib is building the font cache; this may take a moment.', "
               "file=sys.stderr)", "ex00_4_test", 1),
    ])


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    course = Course.build(tmp_path_factory.mktemp("traps"), [], {A: {"traps": trap_notebook()}})
    released = nbformat.read(course.generate(A) / "traps.ipynb", as_version=4)
    good = with_cells_replaced(released, {"ex00_1_solution": FILLED})
    course.submit("good", A, {"traps": good})

    tagged = nbformat.from_dict(released)
    for cell in tagged.cells:
        if nbgrader_meta(cell).get("grade_id") == "ex00_1_test":
            cell.metadata["tags"] = ["skip-execution", SKIP_TAG]
    course.submit("skip_tagged", A, {"traps": tagged})

    for student, base in (("deleted_good", good), ("deleted_blank", released)):
        nb = nbformat.from_dict(base)
        nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != "ex00_1_test"]
        course.submit(student, A, {"traps": nb})

    looping = with_cells_replaced(released, {"ex00_1_solution": "while True:\n    pass"})
    course.submit("endless_loop", A, {"traps": looping})
    course.autograde(A, env={"COURSE_CELL_TIMEOUT": "5"}, timeout=600)
    return course, course.scores(A)


def test_correct_solution_scores_and_heavy_cells_are_skipped(graded_course):
    _, scores = graded_course
    s = scores["good"]["traps"]
    assert s["ex00_1_test"] == (1.0, 1.0)
    assert s["ex00_2_test"] == (1.0, 1.0), "autograde-skip cells must not run while grading"


def test_stderr_in_a_test_cell_scores_zero_unless_ignored(graded_course):
    _, scores = graded_course
    assert scores["good"]["traps"]["ex00_3_test"] == (0.0, 1.0), (
        "a warning means 0: keep tests quiet")
    assert scores["good"]["traps"]["ex00_4_test"] == (1.0, 1.0), "IgnorePattern must drop chatter"


def test_skip_tags_on_a_test_cell_earn_nothing(graded_course):
    _, scores = graded_course
    assert scores["skip_tagged"]["traps"]["ex00_1_test"] == (0.0, 1.0)


def test_deleted_test_cells_come_back_as_valid_python(graded_course):
    course, scores = graded_course
    assert scores["deleted_good"]["traps"]["ex00_1_test"] == (1.0, 1.0)
    assert scores["deleted_blank"]["traps"]["ex00_1_test"] == (0.0, 1.0)
    nb = course.autograded("deleted_good", A, "traps")
    restored = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "ex00_1_test"]
    assert len(restored) == 1
    assert restored[0].source.startswith("# This cell (id:ex00_1_test) was missing")


def test_endless_cell_times_out_and_is_scored(graded_course):
    course, scores = graded_course
    assert scores["endless_loop"]["traps"]["ex00_1_test"] == (0.0, 1.0)
    nb = course.autograded("endless_loop", A, "traps")
    solution = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "ex00_1_solution")
    assert any(o.get("ename") in ("CellTimeoutError", "KeyboardInterrupt")
               for o in solution.outputs), "the endless cell should end in a time-out error"
