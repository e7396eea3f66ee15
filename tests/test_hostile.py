"""Hostile submissions (autograde/hostile/*.yml) graded by the course's grading command.

One batch -- one ``python -m autograde.grade`` run on a tiny course, with a short per-cell
time-out and a small memory cap -- grades every hostile case and one honest student. For each
case the test proves: the score recorded in the gradebook is the expected one (the trick earns
nothing), the report names the expected reasons; and for the batch: every student has a
score (a dead kernel does not stop the run), the honest student has full marks, no submitted
file changed, no process of the run survives, the gradebook's test cells are intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograde import confine, records
from autograde.course import Course
from autograde.hostile import (
    ASSIGNMENT,
    MAX_SCORE,
    NOTEBOOK,
    honest_submission,
    load_cases,
    source_notebook,
)

pytestmark = pytest.mark.slow

CASES = load_cases()
CAPS = {"COURSE_CELL_TIMEOUT": "15", "COURSE_MEM_LIMIT_GB": "6",
        "COURSE_NOTEBOOK_TIMEOUT": "90", "COURSE_MAX_OUTPUT_KB": "100"}


def files_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = Course.build(tmp_path_factory.mktemp("hostile"), [],
                          {ASSIGNMENT: {NOTEBOOK: source_notebook()}})
    released = nbformat.read(course.generate(ASSIGNMENT) / f"{NOTEBOOK}.ipynb", as_version=4)
    course.submit("honest", ASSIGNMENT, {NOTEBOOK: honest_submission(released)})
    for case in CASES:
        course.submit(case.name, ASSIGNMENT, {NOTEBOOK: case.submission(released)})
    submitted = course.root / "autograde" / "submitted"
    before = files_digest(submitted)
    report = course.root / "report" / "hostile.csv"
    env = {k: v for k, v in os.environ.items()
           if k not in ("COURSE_GRADEBOOK_URL", "NBGRADER_EXECUTION")}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "autograde.grade", ASSIGNMENT,
                           "--report", str(report)], cwd=course.root, env={**env, **CAPS},
                          capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    print(f"grading {len(CASES) + 1} submissions took {seconds:.0f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(report.with_suffix(".json").read_text())
    url = course.db_url
    return {"course": course, "report": report, "data": data, "before": before,
            "after": files_digest(submitted), "scores": records.scores(url, ASSIGNMENT),
            "results": {r["student"]: r for r in data["results"]}, "url": url}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_scores_what_it_should_and_says_why(graded, case):
    result = graded["results"][case.name]
    recorded = graded["scores"][case.name][NOTEBOOK]
    total = sum(score for score, _ in recorded.values())
    assert total == case.score, (
        f"{case.name} ({case.what}): recorded {total}, expected {case.score}; "
        f"report: {result['status']} {result['reasons']}")
    assert result["score"] == case.score
    codes = {r["code"] for r in result["reasons"]}
    assert set(case.reasons) <= codes, f"{case.name}: report gives {codes}, expected {case.reasons}"
    text = graded["report"].with_suffix(".txt").read_text()
    for code in case.reasons:
        assert any(code in line for line in text.splitlines() if line.strip().startswith("-"))


def test_honest_student_gets_full_marks(graded):
    honest = graded["results"]["honest"]
    assert honest["status"] == "ok" and honest["reasons"] == []
    cells = graded["scores"]["honest"][NOTEBOOK]
    assert sum(s for s, _ in cells.values()) == MAX_SCORE
    assert all(score == maximum for score, maximum in cells.values()), cells


def test_the_batch_goes_on_and_every_student_has_a_score(graded):
    students = {"honest", *(c.name for c in CASES)}
    assert set(graded["results"]) == students
    assert set(graded["scores"]) == students
    for student, notebooks in graded["scores"].items():
        assert sum(m for _, m in notebooks[NOTEBOOK].values()) == MAX_SCORE, student
    rows = (graded["report"]).read_text().splitlines()
    assert len(rows) == 1 + len(students)


def test_submissions_are_not_modified(graded):
    assert graded["before"] == graded["after"]


def test_no_process_of_the_run_survives(graded):
    run_id = graded["data"]["run_id"]
    assert not confine.marked(run_id, prefix=True), "processes with the run's marker survive"
    orphans = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
               if "hostile-orphan" in confine.cmdline(pid)]
    assert not orphans, [confine.cmdline(p) for p in orphans]
    killed = graded["results"]["07_background_process"]["killed"]
    assert any("hostile-orphan-a" in k for k in killed)
    assert any("hostile-orphan-b" in k for k in killed), "the double fork without marker"


def test_gradebook_definitions_survive_a_kernel_that_writes_to_it(graded):
    from sqlalchemy import create_engine, text

    engine = create_engine(graded["url"])
    with engine.connect() as conn:
        points = dict(conn.execute(text("SELECT bc.name, gc.max_score FROM grade_cells gc "
                                        "JOIN base_cell bc ON gc.id = bc.id")).all())
    engine.dispose()
    assert points == {"ex00_1_test": 1.0, "ex00_2_test": 2.0}


def test_output_flood_is_capped(graded):
    course = graded["course"]
    autograded = (course.root / "autograde" / "autograded" / "15_output_flood" / ASSIGNMENT
                  / f"{NOTEBOOK}.ipynb")
    assert autograded.stat().st_size < 1_000_000, "the flood reached the autograded notebook"
    logs = list((graded["report"].parent / "logs").rglob("15_output_flood.log"))
    assert logs and logs[0].stat().st_size < 1_000_000, "the flood reached the grading log"
