"""The autograder proves itself on every chapter, through the real `nbgrader autograde`.

For each assignment (each notebook of chapter 15, whose five capstones are graded apart so that
two workers share them), three submissions are graded in one nbgrader run:
- "solution": the instructor's notebook -> full marks on every graded cell;
- "blank": the released notebook, unchanged -> zero on every graded cell;
  manually graded answer cells: left for the instructor when answered, zero when left blank;
- "mutants": the solution with the first mutant of every exercise swapped in -> every
  exercise loses points (each mutant is also checked alone, in tests/test_mutants.py).
Then `nbgrader generate_feedback` on the mutants submission (the same test cells as the others,
and failures in visible and hidden tests): no line of a hidden test in the HTML, failing
cells and visible messages still there (tests/test_feedback_hidden.py, nbgrader issue #917).
"""

from __future__ import annotations

import time

import pytest

from autograde.course import (
    RELEASE,
    SOLUTIONS,
    Course,
    load_mutants,
    nbgrader_meta,
    read_notebook,
    with_cells_replaced,
)
from autograde.mutation import exercise_of

from .conftest import NOTEBOOKS
from .test_feedback_hidden import check_feedback


def by_exercise(cells: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    totals: dict[str, list[float]] = {}
    for gid, (score, maximum) in cells.items():
        parsed = exercise_of(gid)
        key = parsed[0] if parsed else gid
        acc = totals.setdefault(key, [0.0, 0.0])
        acc[0] += score
        acc[1] += maximum
    return {k: (v[0], v[1]) for k, v in totals.items()}


def round_trip_units() -> list[tuple[str, list[str]]]:
    """(assignment, notebooks) graded together: a chapter, or one capstone of chapter 15."""
    units: dict[str, list[str]] = {}
    for a, n in NOTEBOOKS:
        units.setdefault(a, []).append(n)
    out = []
    for a, names in units.items():
        out += [(a, names)] if len(names) == 1 else [(a, [n]) for n in names]
    return out


UNITS = round_trip_units()


@pytest.mark.slow
@pytest.mark.parametrize("assignment,names", UNITS,
                         ids=[a if names == [a] else f"{a}/{names[0]}" for a, names in UNITS])
def test_round_trip(assignment, names, tmp_path):
    solution = {n: read_notebook(SOLUTIONS / assignment / f"{n}.ipynb") for n in names}
    whole = len(names) == len([n for a, n in NOTEBOOKS if a == assignment])
    course = (Course.build(tmp_path / "course", [assignment]) if whole else
              Course.build(tmp_path / "course", [], extra_sources={assignment: solution}))
    course.generate(assignment)
    blank = {n: read_notebook(RELEASE / assignment / f"{n}.ipynb") for n in names}
    mutated = {}
    first: dict[tuple[str, str], dict] = {}
    for m in load_mutants(assignment):
        if m.get("notebook", names[0]) in names:
            first.setdefault((m.get("notebook", names[0]), m["exercise"]), m)
    for n in names:
        swaps = {m["cell"]: m["code"] for (nb_name, _), m in first.items() if nb_name == n}
        mutated[n] = with_cells_replaced(solution[n], swaps)
    course.submit("solution", assignment, solution)
    course.submit("blank", assignment, blank)
    course.submit("mutants", assignment, mutated)
    start = time.monotonic()
    course.autograde(assignment)
    seconds = time.monotonic() - start
    scores = course.scores(assignment)
    pending = course.pending_manual(assignment)
    print(f"{assignment} {names}: autograde of 3 submissions took {seconds:.1f} s")
    for n in names:
        for gid, (score, maximum) in scores["solution"][n].items():
            assert score == maximum, (
                f"{assignment}/{n}: the solution scores {score}/{maximum} on {gid}; see "
                f"{course.root}/autograde/autograded/solution")
        for gid, (score, _) in scores["blank"][n].items():
            assert score == 0, f"{assignment}/{n}: the blank notebook scores {score} on {gid}"
        manual = [nbgrader_meta(c)["grade_id"] for c in solution[n].cells
                  if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")]
        assert sorted(pending["solution"].get(n, [])) == sorted(manual), (
            f"{assignment}/{n}: the solution's written answers {manual} should wait for the "
            f"instructor, pending: {pending['solution'].get(n)}")
        assert not pending["blank"].get(n), f"{assignment}/{n}: blank answers are not zeroed"
        lost = by_exercise(scores["mutants"][n])
        for (nb_name, ex), m in first.items():
            if nb_name != n:
                continue
            got, maximum = lost[ex]
            assert got < maximum, (f"{assignment}/{n}: mutant {m['name']!r} of {ex} keeps "
                                   f"full marks ({got}/{maximum})")
    start = time.monotonic()
    check_feedback(course, assignment, ["mutants"], names)
    print(f"{assignment}: feedback of the mutants submission took {time.monotonic() - start:.1f} s")
