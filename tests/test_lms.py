"""The instructor's round trip with an LMS, through the real `nbgrader` (autograde/lms.py).

A Canvas-style download (one zip, files named `<lastnamefirstname>[_LATE]_<userid>_
<submissionid>_<name>[-N].ipynb`, a stray PDF) goes through `nbgrader zip_collect`, the example
roster `autograde/examples/roster.csv` is imported, the notebooks are autograded, feedback is
generated (hidden tests left out), grades are exported to CSV with nbgrader's columns and the
roster's names, and regrading the same submissions gives the same grades. The assignment is
the tiny one of tests/test_feedback_hidden.py (3 points), to keep this fast.
"""

from __future__ import annotations

import csv
import zipfile

import nbformat
import pytest
from nbgrader.plugins import FileNameCollectorPlugin

from autograde import lms
from autograde.course import ROOT, Course, with_cells_replaced

from .test_feedback_hidden import SUBMISSIONS, check_feedback, tiny_notebook

A = "00_lms"
NAME = "lab"
ROSTER = ROOT / "autograde" / "examples" / "roster.csv"
#: file name in the LMS zip -> (student id, which tiny submission)
DOWNLOAD = {
    f"lovelaceada_10001_500001_{NAME}.ipynb": ("10001", "correct"),
    f"turingalan_LATE_10002_500002_{NAME}-1.ipynb": ("10002", "hidden_fail"),
    f"hoppergrace_10003_500003_{NAME}.ipynb": ("10003", "visible_fail"),
}
STRAY = "hoppergrace_10003_500004_notes.pdf"  # not a notebook: zip_collect skips it
COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
           "email", "raw_score", "late_submission_penalty", "score", "max_score"]
EXPECTED_SCORE = {"10001": 3.0, "10002": 0.0, "10003": 0.0, "10004": 0.0}  # 10004: no submission


def export(course: Course, name: str) -> list[dict]:
    path = course.root / name
    course.nbgrader("export", "--to", str(path))
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS, f"export columns changed: {reader.fieldnames}"
        return list(reader)


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    course = Course.build(tmp_path_factory.mktemp("lms"), [], {A: {NAME: tiny_notebook()}})
    released = nbformat.read(course.generate(A) / f"{NAME}.ipynb", as_version=4)
    archive = course.root / "autograde" / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    uploaded = {}
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        for filename, (student, case) in DOWNLOAD.items():
            text = nbformat.writes(with_cells_replaced(released, SUBMISSIONS[case]))
            zf.writestr(filename, text)
            uploaded[student] = text
        zf.writestr(STRAY, b"%PDF-1.4 not a notebook")
    course.nbgrader("zip_collect", A)
    course.nbgrader("db", "student", "import", str(ROSTER))
    course.autograde(A)
    first = export(course, "grades.csv")
    scores = course.scores(A)
    course.autograde(A)  # regrade the same submissions
    return course, uploaded, first, scores, export(course, "regraded.csv"), course.scores(A)


@pytest.mark.slow
def test_zip_collect_files_each_notebook_under_its_student(round_trip):
    course, uploaded, *_ = round_trip
    submitted = course.root / "autograde" / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(uploaded)
    for student, text in uploaded.items():
        files = sorted(p.name for p in (submitted / student / A).iterdir())
        assert files == [f"{NAME}.ipynb"], f"{student}: {files} (the PDF must be skipped)"
        assert (submitted / student / A / f"{NAME}.ipynb").read_text() == text


@pytest.mark.slow
def test_export_has_nbgraders_columns_and_the_roster(round_trip):
    _, _, rows, *_ = round_trip
    with ROSTER.open(newline="") as f:
        roster = {r["id"]: r for r in csv.DictReader(f)}
    assert sorted(r["student_id"] for r in rows) == sorted(roster), "one row per roster student"
    for row in rows:
        person = roster[row["student_id"]]
        assert (row["first_name"], row["last_name"], row["email"]) == (
            person["first_name"], person["last_name"], person["email"])
        assert row["assignment"] == A and float(row["max_score"]) == 3.0
        assert float(row["score"]) == EXPECTED_SCORE[row["student_id"]], row


@pytest.mark.slow
def test_feedback_for_every_collected_student(round_trip):
    course, uploaded, *_ = round_trip
    check_feedback(course, A, sorted(uploaded), [NAME])


@pytest.mark.slow
def test_regrading_gives_identical_grades(round_trip):
    _, _, first, scores, again, scores_again = round_trip
    assert again == first
    assert scores_again == scores


@pytest.mark.parametrize("lms_name, path, expected", [
    ("canvas", f"/x/extracted/submissions/lovelaceada_10001_500001_{NAME}.ipynb",
     ("10001", NAME)),
    ("canvas", f"/x/turingalan_LATE_10002_500002_{NAME}-2.ipynb", ("10002", NAME)),
    ("canvas", "/x/hoppergrace_10003_500003_c1_forecasting.ipynb", ("10003", "c1_forecasting")),
    ("canvas", "/x/hoppergrace_10003_500004_notes.pdf", None),
    ("canvas", f"/x/{NAME}.ipynb", None),
    ("moodle", f"/x/Ada Lovelace_10001_assignsubmission_file_{NAME}.ipynb", ("10001", NAME)),
    ("moodle", f"/x/Alan Turing_10002_assignsubmission_file/{NAME}.ipynb", ("10002", NAME)),
    ("moodle", f"/x/Alan Turing_10002_assignsubmission_onlinetext/{NAME}.ipynb", None),
])
def test_file_name_patterns(lms_name, path, expected):
    collector = FileNameCollectorPlugin(named_regexp=lms.pattern(lms_name))
    info = collector.collect(path)
    assert ((info["student_id"], info["file_id"]) if info else None) == expected


def test_unknown_lms_is_a_clear_error():
    with pytest.raises(ValueError, match="COURSE_LMS must be one of"):
        lms.pattern("blackboard")
