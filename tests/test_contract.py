"""The grading contract of COURSE_DESIGN.md, read statically from every solution notebook."""

from __future__ import annotations

import re
from collections import defaultdict

import jupytext
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from autograde.course import RELEASE, SOLUTIONS, load_mutants, nbgrader_meta, read_notebook
from autograde.mutation import EXERCISE_ID, exercise_of
from autograde.policy import SKIP_TAG

from .conftest import ASSIGNMENTS, NOTEBOOK_IDS, NOTEBOOKS

HEADING = re.compile(r"^### Exercise (\d+)\.(\d+) — (.+) \((★+), (\d+) points?\)\s*$", re.M)
CONCEPT = re.compile(r"^#{2,3} Concept check \((\d+) points?\)\s*$", re.M)
MANUAL_ID = re.compile(r"^ans\d\d_[a-z0-9_]+$")


def chapter_number(assignment: str) -> int:
    return int(assignment.split("_")[0])


@pytest.fixture(params=NOTEBOOKS, ids=NOTEBOOK_IDS)
def notebook(request):
    assignment, name = request.param
    return assignment, name, read_notebook(SOLUTIONS / assignment / f"{name}.ipynb")


def graded_cells(nb):
    return [c for c in nb.cells if nbgrader_meta(c)]


def test_nbgrader_metadata_is_valid(notebook):
    _, name, nb = notebook
    MetadataValidator().validate_nb(nb)  # raises with nbgrader's own message
    ids = [nbgrader_meta(c)["grade_id"] for c in graded_cells(nb)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"{name}: duplicate grade ids {dupes}"


def test_ids_follow_the_design(notebook):
    assignment, name, nb = notebook
    number = chapter_number(assignment)
    for cell in graded_cells(nb):
        meta = nbgrader_meta(cell)
        gid = meta["grade_id"]
        if meta.get("grade") and meta.get("solution") or meta.get("task"):
            assert MANUAL_ID.match(gid), (
                f"{name}: manually graded cell id {gid!r} should be ans{number:02d}_<name>")
            continue
        assert EXERCISE_ID.match(gid), (
            f"{name}: grade id {gid!r} does not follow exNN_K_solution / exNN_K_test[_a] / "
            "ccNN_solution / ccNN_test")
        assert gid[2:4] == f"{number:02d}", f"{name}: {gid!r} does not belong to chapter {number}"
        kind = exercise_of(gid)[1]
        if kind == "solution":
            assert meta.get("solution") and not meta.get("grade"), f"{gid}: must be a solution cell"
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, (
                f"{gid}: a solution cell needs ### BEGIN SOLUTION / ### END SOLUTION")
        else:
            assert meta.get("grade") and not meta.get("solution"), f"{gid}: must be a graded test"
            assert meta.get("locked"), f"{gid}: test cells must be locked"
            assert meta.get("points", 0) > 0, f"{gid}: a test cell needs points"
            assert cell.cell_type == "code"
            src = cell.source
            assert "### BEGIN HIDDEN TESTS" in src and "### END HIDDEN TESTS" in src, (
                f"{gid}: every test cell needs hidden tests")
            visible = src.split("### BEGIN HIDDEN TESTS")[0]
            assert "checks." in visible or "check_" in visible, (
                f"{gid}: visible tests must use helpers.checks so that failures teach")
            assert not re.search(r"^\s*assert\s", src, re.M), (
                f"{gid}: use helpers.checks instead of bare asserts (failures must teach)")
        assert SKIP_TAG not in cell.metadata.get("tags", []), (
            f"{gid}: graded cells are never skipped")


def test_every_exercise_has_solution_tests_and_heading(notebook):
    assignment, name, nb = notebook
    parts = defaultdict(lambda: {"solution": 0, "test": 0, "points": 0})
    for cell in graded_cells(nb):
        parsed = exercise_of(nbgrader_meta(cell)["grade_id"])
        if parsed:
            parts[parsed[0]][parsed[1]] += 1
            parts[parsed[0]]["points"] += nbgrader_meta(cell).get("points", 0) or 0
    assert parts, f"{name} has no exercises"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    headings = {f"ex{int(a):02d}_{int(b)}": int(p) for a, b, _, _, p in HEADING.findall(text)}
    for ex, got in parts.items():
        assert got["solution"] and got["test"], f"{name} {ex}: needs solution and test cells"
        if ex.startswith("cc"):
            concept = CONCEPT.findall(text)
            assert concept, (
                f"{name}: the concept check needs a heading '### Concept check (N points)'")
            assert int(concept[0]) == got["points"], f"{name}: concept check points disagree"
            continue
        assert ex in headings, (
            f"{name} {ex}: needs a heading '### Exercise N.K — Title (★★, P points)'")
        assert headings[ex] == got["points"], (
            f"{name} {ex}: heading says {headings[ex]} points, test cells give {got['points']}")
    assert set(headings) <= set(parts), (
        f"{name}: headings without exercises {set(headings) - set(parts)}")
    if not assignment.startswith("15"):
        assert any(ex.startswith("cc") for ex in parts), f"{name}: needs a graded concept check"


def test_anatomy(notebook):
    _, name, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{name}: title first"
    for word in ("learn", "Prerequisites", "time"):
        assert word.lower() in first.source.lower(), f"{name}: the title cell should say {word!r}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "helpers.setup(" in code[0].source, f"{name}: the first code cell is the setup cell"
    assert nb.metadata["kernelspec"]["name"] == "dl-course"
    assert any("takeaways" in c.source.lower() for c in nb.cells if c.cell_type == "markdown")


def test_solutions_are_stored_without_outputs(notebook):
    _, name, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{name}: outputs are stored; clear them (jupytext --sync from the .py twin)")


def test_jupytext_twin_in_sync(notebook):
    assignment, name, nb = notebook
    twin = SOLUTIONS / assignment / f"{name}.py"
    assert twin.exists(), f"{twin} (the jupytext twin) is missing"
    expected = jupytext.writes(nb, fmt="py:percent")
    assert twin.read_text() == expected, (
        f"{twin.name} and {name}.ipynb have drifted: edit one, then run `make sync`")


def test_released_notebook_exists(notebook):
    assignment, name, _ = notebook
    assert (RELEASE / assignment / f"{name}.ipynb").exists(), "run `make release`"
    assert not list((RELEASE / assignment).glob("*.py")), "a jupytext twin (with solutions) leaked"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mutants_cover_every_exercise(assignment):
    mutants = load_mutants(assignment)
    solution_cells = {}
    exercises = set()
    for a, name in NOTEBOOKS:
        if a != assignment:
            continue
        nb = read_notebook(SOLUTIONS / a / f"{name}.ipynb")
        for cell in graded_cells(nb):
            parsed = exercise_of(nbgrader_meta(cell)["grade_id"])
            if parsed:
                exercises.add(parsed[0])
                if parsed[1] == "solution":
                    solution_cells[nbgrader_meta(cell)["grade_id"]] = (parsed[0], cell.source)
    counts = defaultdict(int)
    names = set()
    for m in mutants:
        assert set(m) >= {"exercise", "cell", "name", "code"}, f"mutant {m} misses a key"
        assert m["cell"] in solution_cells, f"mutant {m['name']!r}: no solution cell {m['cell']!r}"
        assert solution_cells[m["cell"]][0] == m["exercise"], (
            f"mutant {m['name']!r}: cell {m['cell']} is not part of {m['exercise']}")
        assert m["code"].strip() != solution_cells[m["cell"]][1].strip(), (
            f"mutant {m['name']!r} is the solution itself")
        assert (m["exercise"], m["name"]) not in names, f"duplicate mutant name {m['name']!r}"
        names.add((m["exercise"], m["name"]))
        counts[m["exercise"]] += 1
    short = {ex: counts[ex] for ex in exercises if counts[ex] < 2}
    assert not short, f"{assignment}: exercises with fewer than 2 mutants: {short}"
