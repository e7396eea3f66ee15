"""Feedback keeps hidden tests hidden (nbgrader issue #917), with the real `nbgrader`.

nbgrader's feedback HTML shows every test cell with its hidden tests, and tracebacks whose code
context shows hidden lines. `HideHiddenTests` (nbgrader_config.py, autograde/hidden.py) removes
them. `check_feedback` proves it on the feedback of a graded course:

- no hidden-only line (a stripped, non-trivial line inside a hidden block that occurs nowhere
  outside hidden blocks nor in `helpers`) appears in any feedback HTML -- as code, as
  traceback context, or anywhere else;
- what students need is still there: the visible test code of every test cell, the name of
  every failing test cell, the message of every visible failure, and for a hidden failure a
  message that names the cell.

Every chapter is checked in tests/test_roundtrip.py, on the feedback of the mutants
submission it grades anyway (every test cell; failures in visible and hidden tests); here a
tiny course covers each case exactly, and shows that the check finds hidden lines in
nbgrader's unredacted HTML (it can fail).
"""

from __future__ import annotations

import html
import re

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograde.course import (
    ROOT,
    Course,
    course_notebook,
    nbgrader_meta,
    with_cells_replaced,
)
from autograde.course import graded_cell as graded
from autograde.hidden import redact_notebook

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
TAG = re.compile(r"<[^>]+>")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GUTTER = re.compile(r"^\s*(?:-*>)?\s*\d+ ")  # "----> 5 code", "      6 code" in tracebacks
FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")
#: lines handed out with the helpers package are public, even if a hidden test repeats one
HELPERS_LINES = {line.strip() for path in (ROOT / "helpers").glob("*.py")
                 for line in path.read_text().splitlines()}


def page_lines(page: str) -> set[str]:
    """The text lines of an HTML page (tags dropped, entities decoded), each stripped, and
    also without a traceback's line-number gutter."""
    text = html.unescape(TAG.sub("", page))
    lines = set()
    for line in text.splitlines():
        lines.add(line.strip())
        lines.add(GUTTER.sub("", line).strip())
    return lines


def _sides(source: str) -> tuple[list[str], list[str], set[int]]:
    """(hidden lines, visible lines, hidden line numbers) of one cell, markers included."""
    hidden, visible, numbers, inside = [], [], set(), False
    for number, line in enumerate(source.split("\n"), start=1):
        if BEGIN in line:
            inside = True
        if inside:
            hidden.append(line.strip())
            numbers.add(number)
        else:
            visible.append(line.strip())
        if END in line:
            inside = False
    return hidden, visible, numbers


def _non_trivial(line: str) -> bool:
    return len(line) >= 8 and re.search(r"[A-Za-z_]\w", line) is not None


def secret_lines(nb: nbformat.NotebookNode) -> set[str]:
    """Non-trivial lines that occur in hidden blocks only."""
    hidden, public = set(), set()
    for cell in nb.cells:
        h, v, _ = _sides(cell.source)
        hidden.update(h)
        public.update(v)
    return {line for line in hidden - public - HELPERS_LINES if _non_trivial(line)}


def failing_line(error: dict, count: int | None) -> int | None:
    """The line of the test cell that raised ``error`` (outermost frame of that cell)."""
    for entry in error.get("traceback", []):
        for match in FRAME.finditer(ANSI.sub("", entry)):
            if count is None or int(match.group(1)) == count:
                return int(match.group(2))
    return None


def check_page(page: str, graded: nbformat.NotebookNode, label: str) -> None:
    """Assert the feedback ``page`` of the autograded notebook ``graded`` hides hidden tests
    and keeps what students need (see the module docstring)."""
    lines = page_lines(page)
    text = html.unescape(TAG.sub("", page))
    secret = secret_lines(graded)
    tests = [c for c in graded.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]
    if any(BEGIN in c.source for c in tests):
        assert secret, f"{label}: hidden blocks without a single line of their own?"
    leaked = sorted(secret & lines)
    assert not leaked, f"{label}: hidden test lines in the feedback: {leaked[:5]}"
    for cell in tests:
        gid = nbgrader_meta(cell)["grade_id"]
        _, visible, hidden_numbers = _sides(cell.source)
        shown = [v for v in visible if _non_trivial(v) and v not in HELPERS_LINES]
        assert not shown or set(shown) & lines, f"{label}: the visible tests of {gid} are gone"
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if not errors:
            continue
        assert f"Grade cell: {gid}" in text, f"{label}: the failing cell {gid} is not named"
        line = failing_line(errors[0], cell.execution_count)
        if line is not None and line not in hidden_numbers:
            first = (errors[0].evalue.splitlines() or [""])[0]
            message = f"{errors[0].ename}: {first}".strip()
            assert message in lines, f"{label}: the visible failure of {gid} lost {message!r}"
        else:
            assert re.search(rf"(A hidden test of|The test cell) {gid} failed", text), (
                f"{label}: the hidden failure of {gid} is not reported by name")


def check_feedback(course: Course, assignment: str, students: list[str],
                   names: list[str]) -> None:
    """``nbgrader generate_feedback`` for ``students`` of a graded course, then
    :func:`check_page` on each page."""
    only = ["--student", students[0]] if len(students) == 1 else []
    course.nbgrader("generate_feedback", assignment, "--force", *only)
    for student in students:
        for name in names:
            path = course.root / "autograde" / "feedback" / student / assignment / f"{name}.html"
            assert path.exists(), f"no feedback for {student}/{assignment}/{name}"
            check_page(path.read_text(), course.autograded(student, assignment, name),
                       f"{student}/{assignment}/{name}")


# --- a tiny course: each case of a failure ----------------------------------------------------

A = "00_feedback"
ADD = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
ADD_TEST = """checks.check_equal(add(1, 2), 3, "add(1, 2)", hint="use the + operator")
### BEGIN HIDDEN TESTS
secret_pair = (-7, 7)
checks.check_equal(add(*secret_pair), 0, "add(-7, 7)")
assert add(100, 1) == 101, "hidden: add(100, 1)"
### END HIDDEN TESTS
print("add checked")"""
HALF = "def half(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION"
HALF_TEST = """checks.check_equal(half(4), 2.0, "half(4)")
### BEGIN HIDDEN TESTS
def _odd_cases():
    return [half(value) for value in (1, 3)]
checks.check_equal(_odd_cases(), [0.5, 1.5], "half of odd numbers")
### END HIDDEN TESTS"""
SUBMISSIONS = {
    "correct": {"ex00_1_solution": "def add(a, b):\n    return a + b",
                "ex00_2_solution": "def half(x):\n    return x / 2"},
    "visible_fail": {"ex00_1_solution": "def add(a, b):\n    return a * b",
                     "ex00_2_solution": "def half(x):\n    return x // 3"},
    "hidden_fail": {"ex00_1_solution": "def add(a, b):\n    return 3 if a == 1 else a - b",
                    "ex00_2_solution": "def half(x):\n    return x // 2 * 1.0"},
}


def tiny_notebook() -> nbformat.NotebookNode:
    return course_notebook([
        new_markdown_cell("# Feedback"), new_code_cell("from helpers import checks"),
        graded(ADD, "ex00_1_solution", solution=True), graded(ADD_TEST, "ex00_1_test", 2),
        graded(HALF, "ex00_2_solution", solution=True), graded(HALF_TEST, "ex00_2_test", 1)])


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    course = Course.build(tmp_path_factory.mktemp("feedback"), [], {A: {"fb": tiny_notebook()}})
    released = nbformat.read(course.generate(A) / "fb.ipynb", as_version=4)
    for student, sources in SUBMISSIONS.items():
        course.submit(student, A, {"fb": with_cells_replaced(released, sources)})
    course.autograde(A)
    students = list(SUBMISSIONS)
    check_feedback(course, A, students, ["fb"])
    pages = {s: (course.root / "autograde" / "feedback" / s / A / "fb.html").read_text()
             for s in students}
    return course, course.scores(A), pages


def text_of(page: str) -> str:
    return html.unescape(TAG.sub("", page))


@pytest.mark.slow
def test_scores_are_what_the_cases_need(feedback):
    _, scores, _ = feedback
    assert scores["correct"]["fb"] == {"ex00_1_test": (2.0, 2.0), "ex00_2_test": (1.0, 1.0)}
    for student in ("visible_fail", "hidden_fail"):
        assert scores[student]["fb"] == {"ex00_1_test": (0.0, 2.0), "ex00_2_test": (0.0, 1.0)}


@pytest.mark.slow
def test_passing_cells_say_hidden_tests_passed(feedback):
    text = text_of(feedback[2]["correct"])
    assert text.count("# hidden tests: not shown (they passed)") == 2
    assert text.count("add checked") == 2, "the source line, and its output"


@pytest.mark.slow
def test_visible_failures_keep_their_teaching_message(feedback):
    text = text_of(feedback[2]["visible_fail"])
    assert "add(1, 2) is not what was expected." in text and "use the + operator" in text
    assert "half(4) is not what was expected." in text
    assert text.count("hidden tests: not shown (not run: a visible test above failed first)") == 2
    assert "(hidden tests not shown)" in text, "the traceback context is cut at the hidden block"


@pytest.mark.slow
def test_hidden_failures_name_the_cell_and_show_nothing_hidden(feedback):
    text = text_of(feedback[2]["hidden_fail"])
    for gid in ("ex00_1_test", "ex00_2_test"):
        assert f"A hidden test of {gid} failed." in text
    assert "one of them failed" in text
    # the messages of hidden checks name hidden inputs: they are gone too
    assert "add(-7, 7)" not in text and "half of odd numbers" not in text
    assert text.count("add checked") == 1, "the cell stopped at the hidden failure"


@pytest.mark.slow
def test_the_check_detects_nbgraders_own_feedback(feedback):
    """Without HideHiddenTests (nbgrader's plain feedback), the check finds the hidden lines."""
    course, _, _ = feedback
    graded = course.autograded("visible_fail", A, "fb")
    plain, _ = HTMLExporter().from_notebook_node(graded)
    assert secret_lines(graded) & page_lines(plain)
    with pytest.raises(AssertionError, match="hidden test lines in the feedback"):
        check_page(plain, graded, "unredacted")


# --- unit tests of autograde.hidden (no kernel) -----------------------------------------------

TRACEBACK = [
    "\x1b[31m------------\x1b[39m",
    "\x1b[31mCheckError\x1b[39m     Traceback (most recent call last)",
    "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[3]\x1b[39m\x1b[32m, line {line}\x1b[39m\n"
    "\x1b[32m      1\x1b[39m checks.check_equal(add(1, 2), 3, 'add(1, 2)')\n"
    "\x1b[32m      2\x1b[39m ### BEGIN HIDDEN TESTS\n"
    "\x1b[32m----> \x1b[39m\x1b[32m3\x1b[39m checks.check_equal(add(-7, 7), 0, 'add(-7, 7)')\n"
    "\x1b[32m      4\x1b[39m ### END HIDDEN TESTS\n",
    "\x1b[36mCell\x1b[39m \x1b[32mIn[2]\x1b[39m\x1b[32m, line 2\x1b[39m, in add(a, b)\n"
    "\x1b[32m      1\x1b[39m def add(a, b):\n"
    "\x1b[32m----> \x1b[39m\x1b[32m2\x1b[39m     return a - b + undefined\n",
    "\x1b[31mCheckError\x1b[39m: add(-7, 7) is not what was expected.",
]
SOURCE = ("checks.check_equal(add(1, 2), 3, 'add(1, 2)')\n### BEGIN HIDDEN TESTS\n"
          "checks.check_equal(add(-7, 7), 0, 'add(-7, 7)')\n### END HIDDEN TESTS")


def unit_notebook(line: int) -> nbformat.NotebookNode:
    error = nbformat.v4.new_output("error", ename="CheckError",
                                   evalue="add(-7, 7) is not what was expected.",
                                   traceback=[t.replace("{line}", str(line)) for t in TRACEBACK])
    nb = new_notebook()
    cell = graded(SOURCE, "ex00_1_test", 1)
    cell.execution_count, cell.outputs = 3, [error]
    nb.cells = [new_code_cell("def add(a, b):\n    return a - b + undefined"), cell]
    return nb


def all_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb).replace("\\n", "\n")


def test_hidden_failure_becomes_a_short_message():
    nb = unit_notebook(line=3)
    assert redact_notebook(nb) == 1
    cell = nb.cells[1]
    assert cell.source.splitlines() == ["checks.check_equal(add(1, 2), 3, 'add(1, 2)')",
                                        "# hidden tests: not shown (one of them failed, "
                                        "see the message below)"]
    out = cell.outputs[0]
    assert "A hidden test of ex00_1_test failed." in out.traceback[0]
    assert "add(-7, 7)" not in all_text(nb) and BEGIN not in all_text(nb)
    assert any("return a - b + undefined" in t for t in out.traceback), "the student's frame"


def test_visible_failure_keeps_its_traceback_without_hidden_context():
    nb = unit_notebook(line=1)
    redact_notebook(nb)
    out = nb.cells[1].outputs[0]
    assert out.evalue == "add(-7, 7) is not what was expected."  # a visible message: kept
    frame = ANSI.sub("", out.traceback[2])
    assert "checks.check_equal(add(1, 2), 3, 'add(1, 2)')" in frame
    assert "hidden tests not shown" in frame and BEGIN not in frame and "0, 'add(-7" not in frame
    assert "not run: a visible test above failed first" in nb.cells[1].source


def test_unterminated_and_repeated_blocks():
    from autograde.hidden import Block, hidden_blocks

    source = "a\n### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS\nc\n### BEGIN HIDDEN TESTS\nd"
    assert hidden_blocks(source) == [Block(2, 4), Block(6, 7)]
    nb = new_notebook()
    nb.cells = [graded(source, "t", 1)]
    redact_notebook(nb)
    assert nb.cells[0].source.splitlines() == [
        "a", "# hidden tests: not shown (they passed)", "c",
        "# hidden tests: not shown (they passed)"]


def test_configuration_registers_the_preprocessor():
    text = (ROOT / "nbgrader_config.py").read_text()
    assert "c.GenerateFeedback.preprocessors" in text and "HideHiddenTests" in text
    assert "hidden tests included" not in (ROOT / "Makefile").read_text()
