"""Parallel and distributed grading give exactly the grades of sequential grading.

Four students of the tiny hostile-case assignment -- full marks, one of two exercises right,
one that patches torch.allclose, and one that writes full marks for everybody into the gradebook
(whichever database it is) -- are graded three times by ``python -m autograde.grade``:

1. one at a time with the default SQLite gradebook;
2. with 2 local workers on a PostgreSQL gradebook (a throw-away server, autograde.pgserver);
3. with a Dask LocalCluster of 2 worker processes on the same PostgreSQL database, after every
   submission has been removed from it (so nothing of run 2 can be read back by mistake).

Every graded cell's score and points, the totals and the statuses must be identical: with
several workers too, what the writer changed is restored. Several workers on SQLite are
refused with a message that says what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograde import records
from autograde.course import ROOT, Course, with_cells_replaced
from autograde.hostile import (
    ASSIGNMENT,
    NOTEBOOK,
    honest_submission,
    load_cases,
    source_notebook,
)
from autograde.pgserver import PostgresServer

CAPS = {"COURSE_CELL_TIMEOUT": "30", "COURSE_MEM_LIMIT_GB": "6", "COURSE_NOTEBOOK_TIMEOUT": "120"}
STUDENTS = ["full", "half", "tamper", "writer"]


def grade(root: Path, *args: str, url: str | None = None) -> tuple[subprocess.CompletedProcess,
                                                                     dict]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("COURSE_GRADEBOOK_URL", "NBGRADER_EXECUTION")}
    env.update(CAPS)
    if url:
        env["COURSE_GRADEBOOK_URL"] = url
    report = root / "reports" / ("-".join(a.strip("-") for a in args) + ".csv")
    proc = subprocess.run([sys.executable, "-m", "autograde.grade", ASSIGNMENT, *args,
                           "--report", str(report)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(report.with_suffix(".json").read_text())
    return proc, {r["student"]: (r["score"], r["status"]) for r in data["results"]}


@pytest.mark.slow
def test_parallel_and_dask_grading_match_sequential(tmp_path):
    course = Course.build(tmp_path / "course", [], {ASSIGNMENT: {NOTEBOOK: source_notebook()}})
    released = nbformat.read(course.generate(ASSIGNMENT) / f"{NOTEBOOK}.ipynb", as_version=4)
    cases = {c.name: c for c in load_cases()}
    course.submit("full", ASSIGNMENT, {NOTEBOOK: honest_submission(released)})
    course.submit("half", ASSIGNMENT, {NOTEBOOK: with_cells_replaced(
        released, {"ex00_1_solution": "def add(a, b):\n    return a + b"})})
    course.submit("tamper", ASSIGNMENT, {NOTEBOOK: cases["11_patch_torch"].submission(released)})
    course.submit("writer", ASSIGNMENT,
                  {NOTEBOOK: cases["14_write_gradebook"].submission(released)})

    _, sequential = grade(course.root, "--jobs", "1")
    sqlite_url = course.db_url
    expected = records.scores(sqlite_url, ASSIGNMENT)
    assert sequential == {"full": (3.0, "ok"), "half": (1.0, "ok"), "tamper": (0.0, "tampering"),
                          "writer": (0.0, "tampering")}
    assert set(expected) == set(STUDENTS)

    # a regrade clears the zeros the grading command recorded before: resubmitted honest work
    # gets its marks
    tampered = course.root / "autograde" / "submitted" / "tamper" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    kept = tampered.read_bytes()
    nbformat.write(honest_submission(released), tampered)
    _, regraded = grade(course.root, "--student", "tamper")
    assert regraded == {"tamper": (3.0, "ok")}
    tampered.write_bytes(kept)

    with PostgresServer.start() as pg:
        url = pg.create_database("gradebook")
        course.nbgrader("generate_assignment", ASSIGNMENT, "--force",
                        env={"COURSE_GRADEBOOK_URL": url})
        proc, local = grade(course.root, "--jobs", "2", url=url)
        assert "2 worker(s), local" in proc.stdout
        assert local == sequential
        assert records.scores(url, ASSIGNMENT) == expected

        from nbgrader.api import Gradebook

        with Gradebook(url, "dl-course") as gb:
            for student in STUDENTS:
                gb.remove_submission(ASSIGNMENT, student)
        assert records.scores(url, ASSIGNMENT) == {}
        proc, dask = grade(course.root, "--jobs", "2", "--backend", "dask", url=url)
        assert "2 worker(s), dask" in proc.stdout
        assert dask == sequential
        assert records.scores(url, ASSIGNMENT) == expected


@pytest.mark.parametrize("args", [["--jobs", "2"], ["--backend", "dask"]])
def test_several_workers_on_sqlite_are_refused(args):
    env = {k: v for k, v in os.environ.items() if k != "COURSE_GRADEBOOK_URL"}
    proc = subprocess.run([sys.executable, "-m", "autograde.grade", "01_tensors", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "SQLite" in proc.stderr and "COURSE_GRADEBOOK_URL" in proc.stderr
    assert "postgresql" in proc.stderr
