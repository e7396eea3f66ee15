"""The autograder proves itself on every chapter, through the real `nbgrader autograde`.

For each assignment, three submissions are graded in one nbgrader run:
- "solution": the instructor's notebook -> full marks on every graded cell;
- "blank": the released notebook, unchanged -> zero on every graded cell;
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
    read_notebook,
    with_cells_replaced,
)
from autograde.mutation import exercise_of

from .conftest import ASSIGNMENTS, NOTEBOOKS
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


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_round_trip(assignment, tmp_path):
    names = [n for a, n in NOTEBOOKS if a == assignment]
    course = Course.build(tmp_path / "course", [assignment])
    course.generate(assignment)
    solution = {n: read_notebook(SOLUTIONS / assignment / f"{n}.ipynb") for n in names}
    blank = {n: read_notebook(RELEASE / assignment / f"{n}.ipynb") for n in names}
    mutated = {}
    first: dict[tuple[str, str], dict] = {}
    for m in load_mutants(assignment):
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
    print(f"{assignment}: autograde of 3 submissions took {seconds:.1f} s")
    for n in names:
        for gid, (score, maximum) in scores["solution"][n].items():
            assert score == maximum, (
                f"{assignment}/{n}: the solution scores {score}/{maximum} on {gid}; see "
                f"{course.root}/autograde/autograded/solution")
        for gid, (score, _) in scores["blank"][n].items():
            assert score == 0, f"{assignment}/{n}: the blank notebook scores {score} on {gid}"
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
