"""The gradebook side of the grading command: prepare, read scores, record zeros, guard.

- :func:`prepare` creates the students and submissions of a batch before any worker starts
  (concurrent nbgrader processes would otherwise race to create them on PostgreSQL) and undoes
  the zero overrides an earlier run of the grading command made, so a regrade starts clean;
- :func:`record_zero` scores every graded cell of some notebooks 0 the way a human grader
  would in nbgrader (``manual_score = 0``, the reason as the comment of the answer cells, the
  notebook flagged), so plain ``nbgrader autograde`` reruns cannot undo it;
- :func:`scores` reads what the gradebook says, in one query;
- :class:`Snapshot` copies the rows a submission's kernel could forge (the assignment's test
  cells and points, grades, comments) so that a change made during grading is found and
  restored (the kernel runs as the grader's user, and SQLite is a file next to it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning

#: Start of the comments this module writes; a regrade removes what carries it.
OVERRIDE_PREFIX = "[autograde.grade] "

Rows = dict[str, tuple]


class GradebookError(RuntimeError):
    """The gradebook is not ready for grading (an assignment missing, say)."""


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        tail = f"{user}:***@{tail.split('@', 1)[1]}"
    return head + sep + tail


@contextmanager
def connect(url: str):
    """A connection in a transaction, committed at the end of the block."""
    engine = create_engine(url, future=True)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def prepare(url: str, course_id: str, assignment: str, students: Iterable[str]) -> None:
    """Create the batch's students and submissions, and clear this module's old overrides."""
    from nbgrader.api import Gradebook, MissingEntry

    students = list(students)
    with warnings.catch_warnings(), Gradebook(url, course_id) as gb:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission is noisy
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise GradebookError(
                f"assignment {assignment!r} is not in the gradebook {redact(url)}: run "
                f"`nbgrader generate_assignment {assignment}` (make release A={assignment}) "
                "with the same COURSE_GRADEBOOK_URL first") from None
        for student in students:
            gb.update_or_create_student(student)
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                gb.add_submission(assignment, student)
    with connect(url) as conn:
        clear_overrides(conn, assignment, students)


_SUBMITTED = """
    FROM submitted_notebook sn
    JOIN submitted_assignment sa ON sn.assignment_id = sa.id
    JOIN assignment a ON sa.assignment_id = a.id
    JOIN notebook n ON sn.notebook_id = n.id
"""


def clear_overrides(conn: Connection, assignment: str, students: list[str]) -> None:
    """Undo :func:`record_zero` for these students' notebooks of ``assignment``."""
    rows = conn.execute(text(
        f"SELECT DISTINCT sn.id, sa.student_id {_SUBMITTED} JOIN comment c ON c.notebook_id = sn.id"
        " WHERE a.name = :a AND c.manual_comment LIKE :p"),
        {"a": assignment, "p": OVERRIDE_PREFIX + "%"}).all()
    for nb_id, student in rows:
        if student not in students:
            continue
        conn.execute(text("UPDATE grade SET manual_score = NULL WHERE notebook_id = :n"),
                     {"n": nb_id})
        conn.execute(text("UPDATE comment SET manual_comment = NULL WHERE notebook_id = :n "
                          "AND manual_comment LIKE :p"), {"n": nb_id, "p": OVERRIDE_PREFIX + "%"})
        conn.execute(text("UPDATE submitted_notebook SET flagged = :f WHERE id = :n"),
                     {"f": False, "n": nb_id})


def record_zero(url: str, assignment: str, student: str, notebooks: Iterable[str] | None,
                reason: str) -> None:
    """Score 0 on every graded cell of the student's notebooks (all when ``notebooks`` is
    None), with ``reason`` as the comment of each answer cell."""
    wanted = None if notebooks is None else set(notebooks)
    with connect(url) as conn:
        for nb_id, name in conn.execute(text(
                f"SELECT sn.id, n.name {_SUBMITTED} WHERE a.name = :a AND sa.student_id = :s"),
                {"a": assignment, "s": student}).all():
            if wanted is not None and name not in wanted:
                continue
            conn.execute(text(
                "UPDATE grade SET manual_score = 0, needs_manual_grade = :f, "
                "auto_score = COALESCE(auto_score, 0) WHERE notebook_id = :n"),
                {"f": False, "n": nb_id})
            conn.execute(text("UPDATE comment SET manual_comment = :c WHERE notebook_id = :n"),
                         {"c": OVERRIDE_PREFIX + reason, "n": nb_id})
            conn.execute(text("UPDATE submitted_notebook SET flagged = :t WHERE id = :n"),
                         {"t": True, "n": nb_id})


Scores = dict[str, dict[str, dict[str, tuple[float, float]]]]


def _grade_rows(url: str, assignment: str) -> list[tuple]:
    """(student, notebook, cell, auto, manual, extra credit, max score, needs manual grade)
    per grade."""
    with connect(url) as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT sa.student_id, n.name, bc.name, g.auto_score, g.manual_score, "
            "g.extra_credit, COALESCE(gc.max_score, tc.max_score), g.needs_manual_grade "
            f"{_SUBMITTED} JOIN grade g ON g.notebook_id = sn.id "
            "JOIN base_cell bc ON g.cell_id = bc.id "
            "LEFT JOIN grade_cells gc ON gc.id = bc.id LEFT JOIN task_cells tc ON tc.id = bc.id "
            "WHERE a.name = :a"), {"a": assignment}).all()]


def scores(url: str, assignment: str, students: Iterable[str] | None = None) -> Scores:
    """student -> notebook -> graded cell -> (score, max score), as the gradebook has them."""
    wanted = None if students is None else set(students)
    result: Scores = {}
    for student, notebook, cell, auto, manual, extra, maximum, _ in _grade_rows(url, assignment):
        if wanted is not None and student not in wanted:
            continue
        score = (manual if manual is not None else auto or 0.0) + (extra or 0.0)
        result.setdefault(student, {}).setdefault(notebook, {})[cell] = (float(score),
                                                                          float(maximum or 0))
    return result


def pending_manual(url: str, assignment: str) -> dict[str, dict[str, list[str]]]:
    """student -> notebook -> ids of the cells that wait for an instructor's grade."""
    result: dict[str, dict[str, list[str]]] = {}
    for student, notebook, cell, *_, needs_manual in _grade_rows(url, assignment):
        per_nb = result.setdefault(student, {}).setdefault(notebook, [])
        if needs_manual:
            per_nb.append(cell)
    return result


def auto_scores(url: str, assignment: str, student: str) -> dict[tuple[str, str], float | None]:
    """(notebook, graded cell) -> the autograder's score of one student."""
    return {(nb, cell): auto for s, nb, cell, auto, *_ in _grade_rows(url, assignment)
            if s == student}


# --- integrity ---------------------------------------------------------------------------------

#: What a snapshot holds, per table: the query (rows of one assignment) and the columns kept.
_TABLES = {
    "source_cell": ("SELECT sc.id, NULL, sc.source, sc.checksum, sc.locked, sc.cell_type "
                    "FROM source_cell sc JOIN notebook n ON sc.notebook_id = n.id "
                    "JOIN assignment a ON n.assignment_id = a.id WHERE a.name = :a",
                    ("source", "checksum", "locked", "cell_type")),
    "grade_cells": ("SELECT gc.id, NULL, gc.max_score, gc.cell_type FROM grade_cells gc "
                    "JOIN base_cell bc ON gc.id = bc.id JOIN notebook n ON bc.notebook_id = n.id "
                    "JOIN assignment a ON n.assignment_id = a.id WHERE a.name = :a",
                    ("max_score", "cell_type")),
    "task_cells": ("SELECT tc.id, NULL, tc.max_score, tc.cell_type FROM task_cells tc "
                   "JOIN base_cell bc ON tc.id = bc.id JOIN notebook n ON bc.notebook_id = n.id "
                   "JOIN assignment a ON n.assignment_id = a.id WHERE a.name = :a",
                   ("max_score", "cell_type")),
    "grade": ("SELECT g.id, sa.student_id, g.auto_score, g.manual_score, g.extra_credit, "
              f"g.needs_manual_grade {_SUBMITTED} JOIN grade g ON g.notebook_id = sn.id "
              "WHERE a.name = :a",
              ("auto_score", "manual_score", "extra_credit", "needs_manual_grade")),
    "comment": ("SELECT c.id, sa.student_id, c.auto_comment, c.manual_comment "
                f"{_SUBMITTED} JOIN comment c ON c.notebook_id = sn.id WHERE a.name = :a",
                ("auto_comment", "manual_comment")),
}
#: Columns nbgrader autograde itself writes for the student it grades.
AUTOGRADER_COLUMNS = {"auto_score", "needs_manual_grade", "auto_comment"}
_BOOLEAN = {"locked", "needs_manual_grade"}


@dataclass
class Snapshot:
    """Rows of one assignment: table -> row id -> (student or None, values...)."""

    assignment: str
    tables: dict[str, Rows] = field(default_factory=dict)

    @classmethod
    def take(cls, url: str, assignment: str) -> Snapshot:
        snap = cls(assignment)
        with connect(url) as conn:
            for table, (query, columns) in _TABLES.items():
                rows: Rows = {}
                for row in conn.execute(text(query), {"a": assignment}).all():
                    values = tuple(bool(v) if c in _BOOLEAN and v is not None else v
                                   for c, v in zip(columns, row[2:], strict=True))
                    rows[row[0]] = (row[1], *values)
                snap.tables[table] = rows
        return snap

    def of_student(self, student: str, definitions: bool = False) -> Snapshot:
        """Only the rows of one student's submission, and the assignment's definitions (test
        cells, points) when asked."""
        return Snapshot(self.assignment, {
            t: {k: v for k, v in rows.items() if v[0] == student or (definitions and not v[0])}
            for t, rows in self.tables.items() if definitions or t in ("grade", "comment")})


@dataclass
class Change:
    table: str
    row: str
    student: str | None
    column: str
    expected: object
    found: object

    def __str__(self) -> str:
        who = f" of {self.student}" if self.student else ""
        return f"{self.table}.{self.column}{who} changed from {self.expected!r:.60} " \
               f"to {self.found!r:.60}"


def changes(expected: Snapshot, found: Snapshot, allowed_student: str | None = None,
            ignore_students: Iterable[str] = ()) -> tuple[list[Change], list[str]]:
    """Cells that differ between two snapshots, and rows that appeared or vanished.

    ``allowed_student``: the student being autograded, whose autograder columns may change;
    rows of ``ignore_students`` are not compared (other workers grade them meanwhile).
    """
    skip = set(ignore_students)
    diffs: list[Change] = []
    missing: list[str] = []
    for table, rows in expected.tables.items():
        columns = _TABLES[table][1]
        now = found.tables.get(table, {})
        for row_id, values in rows.items():
            if values[0] in skip:
                continue
            if row_id not in now:
                missing.append(f"{table} row {row_id} ({values[0] or 'definition'}) vanished")
                continue
            for i, column in enumerate(columns, start=1):
                if values[0] == allowed_student and column in AUTOGRADER_COLUMNS:
                    continue
                if not _same(values[i], now[row_id][i]):
                    diffs.append(Change(table, row_id, values[0], column, values[i],
                                        now[row_id][i]))
        for row_id, values in now.items():
            if row_id not in rows and values[0] not in skip and values[0] != allowed_student:
                missing.append(f"{table} row {row_id} ({values[0] or 'definition'}) appeared")
    return diffs, missing


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b


def restore(url: str, diffs: list[Change]) -> None:
    """Write the expected values of ``diffs`` back."""
    with connect(url) as conn:
        for d in diffs:
            conn.execute(text(f"UPDATE {d.table} SET {d.column} = :v WHERE id = :i"),
                         {"v": d.expected, "i": d.row})
