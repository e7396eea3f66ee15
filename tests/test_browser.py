"""The course as people use it: JupyterLab and nbgrader's extensions, driven in a real browser.

One JupyterLab server (from .venv, on a free loopback port, with a token) serves a throw-away
course built by ``autograde.course.Course`` (config, grading code, every chapter of
solutions/) plus a copy of the student notebooks, with the course copy as working directory,
so that nbgrader finds its config and the repository (its gradebook included) is never
touched. One headless Chromium (Debian's, driven by Playwright) then works through it:

1. student: every notebook in notebooks/ opens from the file browser with the course kernel;
   chapter 1 and a training chapter run cell by cell, and the only errors are the
   ``NotImplementedError``s of unanswered exercises (and the failing checks of their tests);
   an answer typed into chapter 1 makes its test cell pass;
2. solutions: one solution notebook runs in full (Run All) with no error;
3. widgets: chapter 1's brightness/contrast widget redraws when its slider is dragged;
4. instructor: the Formgrader lists every assignment of solutions/, the Create Assignment
   panel shows each cell's nbgrader type, id and points, and the Validate button on a student
   notebook lists exactly the failing tests.

Screenshots of every step go to artifacts/browser/ (git-ignored). Executed notebooks are saved
from the UI (Ctrl+S) and read back from disk, so outputs are judged by their error names, not
by the look of the page.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from autograde.course import (
    RELEASE,
    SOLUTIONS,
    Course,
    assignments,
    nbgrader_meta,
    read_notebook,
    with_cells_replaced,
)
from autograde.policy import CELL_TIMEOUT

from .labserver import LabServer, free_port, lab_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
TOKEN = "course-browser-test"
KERNEL = "Python 3 (DL course)"
CELL_MS = CELL_TIMEOUT * 1000  # one cell may run as long as nbgrader allows it
UI_MS = 60_000  # page loads, kernel starts, dialogs

# read when the tests run, so that chapters added meanwhile are picked up
STUDENT_NOTEBOOKS = sorted(p.relative_to(RELEASE).as_posix() for p in RELEASE.glob("*/*.ipynb"))
TRAINING_CHAPTER = "10_rnn"  # a training-heavy chapter, run cell by cell like chapter 1
SOLUTION_CHAPTER = "02_autograd"  # a quick chapter, run in full from its solution notebook
TYPED = "ex01_1"  # the exercise of chapter 1 a student answers by typing
WIDGET_CALL = "brightness_contrast(image)"  # the widget cell of chapter 1
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in tracebacks


def student_path(chapter: str) -> str:
    return f"notebooks/{chapter}/{chapter}.ipynb"


def cell_index(nb: nbformat.NotebookNode, grade_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return i
    raise KeyError(f"no cell with grade id {grade_id!r}")


def is_test_cell(cell: dict) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def cell_type(meta: dict) -> str:
    """The value of the Create Assignment panel's "Type" menu for a cell's nbgrader metadata."""
    if meta.get("task"):
        return "task"
    if meta.get("grade"):
        return "manual" if meta.get("solution") else "tests"
    return "solution" if meta.get("solution") else "readonly" if meta.get("locked") else ""


def from_stub(error: dict) -> bool:
    """Whether an error output is the ``raise NotImplementedError()`` of an exercise stub."""
    lines = [ANSI.sub("", line) for line in error.get("traceback", [])]
    return error.ename == "NotImplementedError" and any(
        re.search(r"^-*> *\d+ +raise NotImplementedError\(\)", line, re.M) for line in lines)


def unexpected_errors(nb: nbformat.NotebookNode) -> list[str]:
    """Errors other than an unanswered exercise's: any error but the ``NotImplementedError``
    of a stub (wherever the stub is called from) or a ``CheckError`` in a graded test cell
    (a test saying what it expected)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type != "error" or from_stub(out):
                continue
            if out.ename == "CheckError" and is_test_cell(cell):
                continue
            where = nbgrader_meta(cell).get("grade_id") or "a cell that is not graded"
            first = cell.source.strip().splitlines()[0][:70]
            found.append(f"cell {i} ({where}, `{first}`): {out.ename}: {out.evalue[:120]}")
    return found


def shot(target: Page | Locator, name: str) -> Path:
    """Save a screenshot of a tab (or of one element) as artifacts/browser/<name>.png."""
    path = ARTIFACTS / f"{name}.png"
    (target if isinstance(target, Page) else target.page).bring_to_front()  # paint it
    target.screenshot(path=str(path))
    return path


def test_error_rules_tell_unanswered_exercises_from_defects():
    """The rule of step 1 on made-up outputs (no browser): what passes, what is reported."""
    def error(ename: str, raised: str) -> nbformat.NotebookNode:
        return nbformat.v4.new_output("error", ename=ename, evalue="", traceback=[
            "\x1b[0;31mCell In[3], line 2\x1b[0m", f"\x1b[0;32m----> 2\x1b[0m {raised}"])
    stub = error("NotImplementedError", "\x1b[38;5;28mraise\x1b[39m NotImplementedError()")
    meta = {"grade": True, "solution": False, "grade_id": "ex01_1_test", "points": 1}
    test = nbformat.v4.new_code_cell("checks.check(x)", metadata={"nbgrader": meta})
    demo = nbformat.v4.new_code_cell("plot(x)")
    cells = [(demo, stub), (test, stub), (test, error("CheckError", "check(x)")),
             (demo, error("CheckError", "check(x)")), (demo, error("NameError", "plot(x)")),
             (test, error("NameError", "check(x)")),
             (demo, error("NotImplementedError", "torch.fft.fft(x)"))]
    nb = nbformat.v4.new_notebook()
    for cell, out in cells:
        nb.cells.append(nbformat.from_dict({**cell, "outputs": [out]}))
    reported = [int(line.split()[1]) for line in unexpected_errors(nb)]
    assert reported == [3, 4, 5, 6]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course copy: config, grading code, all of solutions/ and the student notebooks."""
    root = tmp_path_factory.mktemp("browser") / "course"
    Course.build(root, assignments())
    shutil.copytree(RELEASE, root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # a student who answered Exercise 1.1 (from the solution) and nothing else, for Validate
    solution = read_notebook(SOLUTIONS / "01_tensors" / "01_tensors.ipynb")
    answer = solution.cells[cell_index(solution, f"{TYPED}_solution")].source
    student = read_notebook(RELEASE / "01_tensors" / "01_tensors.ipynb")
    (root / "validate").mkdir()
    nbformat.write(with_cells_replaced(student, {f"{TYPED}_solution": answer}),
                   root / "validate" / "01_tensors.ipynb")
    return root


@pytest.fixture(scope="module")
def lab(course: Path, tmp_path_factory) -> Iterator[LabServer]:
    """`jupyter lab` from .venv, working directory and root = the course copy."""
    work = tmp_path_factory.mktemp("lab")
    settings = work / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')  # no pop-up over the screenshots
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items()
           if k not in ("COURSE_GRADEBOOK_URL", "NBGRADER_EXECUTION")}  # the copy's gradebook
    env.update(JUPYTER_PLATFORM_DIRS="1", JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    port = free_port()
    command = [str(bindir / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={course}",
               f"--LabApp.user_settings_dir={settings}",
               f"--LabApp.workspaces_dir={work / 'workspaces'}"]
    if os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")
    with lab_server(command, course, port, TOKEN, work / "lab.log", env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make system-deps` "
                    "does) or point COURSE_CHROMIUM at a Chromium binary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(UI_MS)
    expect.set_options(timeout=UI_MS)
    yield ctx
    ctx.close()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request) -> Iterator[None]:
    """When a test fails, keep a picture of every open tab (artifacts/browser/FAILED_*)."""
    if "context" not in request.fixturenames:  # a test without a browser
        yield
        return
    context = request.getfixturevalue("context")
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    for old in ARTIFACTS.glob(f"FAILED_{name}_*.png"):
        old.unlink()
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        for k, page in enumerate(context.pages):
            shot(page, f"FAILED_{name}_{k}")


def open_lab(context: BrowserContext, lab: LabServer, workspace: str, path: str) -> Page:
    """A new tab with JupyterLab at ``path``, in a workspace of its own (tabs do not mix)."""
    page = context.new_page()
    tree = f"/tree/{path}" if path else ""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}{tree}?token={lab.token}",
              wait_until="commit")  # callers wait for what they need, tabs load side by side
    return page


# --------------------------------------------------------------------------- notebooks


_CELLS = "document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')"
_ACTIVE_PROMPT = f"""(i) => {{
    const cell = {_CELLS}[i];
    return cell && cell.classList.contains('jp-mod-active')
        ? cell.querySelector('.jp-InputArea-prompt').textContent : null;
}}"""
_RAN = f"""([i, before]) => {{
    const text = {_CELLS}[i].querySelector('.jp-InputArea-prompt').textContent;
    return text !== before && /^\\[\\d+\\]:$/.test(text.trim());
}}"""


class Notebook:
    """The notebook in the current JupyterLab tab of ``page``, and its file on disk."""

    def __init__(self, page: Page, file: Path) -> None:
        self.page, self.file = page, file
        self.panel = page.locator(".jp-NotebookPanel:visible")
        self.cells = self.panel.locator(".jp-Notebook .jp-Cell")

    def read(self) -> nbformat.NotebookNode:
        return read_notebook(self.file)

    def wait_ready(self, rendered: bool = True) -> None:
        """Loaded (every cell, says the status bar), connected to the course kernel, idle;
        ``rendered``: also wait until every cell is on the page (a second for each 10)."""
        n = len(self.read().cells)
        position = self.page.get_by_role("contentinfo").get_by_role(
            "button", name=re.compile(r"^Cell \d+\/\d+$"))  # in the status bar
        expect(position).to_have_text(re.compile(rf"^Cell \d+/{n}$"))
        expect(self.panel.locator(".jp-KernelName")).to_have_text(KERNEL)
        expect(self.panel.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
            "data-status", "idle")
        if rendered:
            expect(self.cells).to_have_count(n)

    def prompt(self, i: int) -> Locator:
        return self.cells.nth(i).locator(".jp-InputArea-prompt")

    def select(self, i: int) -> None:
        """Make cell ``i`` the active cell, in command mode."""
        self.cells.nth(i).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")
        expect(self.cells.nth(i)).to_have_class(re.compile(r"\bjp-mod-active\b"))

    def run_active(self, i: int, code: bool, last: bool = False) -> None:
        """Shift+Enter on the active cell ``i``; for code, wait until its run has ended
        (its prompt shows "[*]:" while it runs, then "[n]:" with a new n)."""
        if code:
            before = self.page.evaluate(_ACTIVE_PROMPT, i)
            assert before is not None, f"cell {i} is not the active cell: focus was lost"
        self.page.keyboard.press("Control+Enter" if last else "Shift+Enter")
        if code:
            self.page.wait_for_function(_RAN, arg=[i, before], timeout=CELL_MS)

    def run_all(self) -> None:
        """Run > Run All Cells; returns at once, while the cells run."""
        self.page.get_by_role("menuitem", name="Run").click()
        self.page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()
        expect(self.panel.locator(".jp-InputArea-prompt", has_text="*").first).to_be_attached()

    def wait_idle(self) -> None:
        """Wait until no cell is queued or running (no "[*]:" prompt left)."""
        expect(self.panel.locator(".jp-InputArea-prompt", has_text="*")).to_have_count(
            0, timeout=CELL_MS)

    def save(self) -> nbformat.NotebookNode:
        """Ctrl+S; the notebook as the server wrote it to disk."""
        with self.page.expect_response(lambda r: r.request.method == "PUT"
                                       and "/api/contents/" in r.url) as saved:
            self.page.keyboard.press("Control+s")
        assert saved.value.ok, f"saving {self.file.name} failed: HTTP {saved.value.status}"
        return self.read()


class CellByCell:
    """A student's run of a notebook: every cell from the top, one at a time (Shift+Enter).

    It advances in steps, so that several tabs can take turns: while one kernel computes,
    the other tabs move on. Markdown (and empty) cells are done at once; code is waited for.
    """

    def __init__(self, nb: Notebook) -> None:
        self.nb = nb
        self.kinds = [c.cell_type if c.source.strip() else "empty" for c in nb.read().cells]
        self.next = 0
        self.running: tuple[int, str, float] | None = None  # cell, prompt before, start
        nb.select(0)

    @property
    def done(self) -> bool:
        return self.next == len(self.kinds) and self.running is None

    def step(self) -> bool:
        """Move on if the running cell has ended; False while it still runs."""
        if self.running:
            i, before, start = self.running
            if not self.nb.page.evaluate(_RAN, [i, before]):
                assert time.monotonic() - start < CELL_TIMEOUT, (
                    f"{self.nb.file.name}: cell {i} still runs after {CELL_TIMEOUT} s")
                return False
            self.running = None
        while self.next < len(self.kinds):
            i = self.next
            self.next += 1
            key = "Control+Enter" if self.next == len(self.kinds) else "Shift+Enter"
            if self.kinds[i] != "code":
                self.nb.page.keyboard.press(key)
                continue
            before = self.nb.page.evaluate(_ACTIVE_PROMPT, i)
            assert before is not None, f"{self.nb.file.name}: cell {i} is not the active cell"
            self.nb.page.keyboard.press(key)
            self.running = (i, before, time.monotonic())
            break
        return True


def run_cell_by_cell(*notebooks: Notebook) -> None:
    """Run the notebooks (each in its own tab) cell by cell, all at the same time."""
    runs = [CellByCell(nb) for nb in notebooks]
    while not all(run.done for run in runs):
        moved = [run.step() for run in runs if not run.done]
        if not any(moved):  # every tab waits for its kernel: look again in a moment
            notebooks[0].page.wait_for_timeout(50)


def open_from_file_browser(page: Page, root: Path, path: str) -> None:
    """Double-click through the file browser, from the course root, to ``path``.

    Before each double-click the listing must show exactly the folder's entries: the file
    browser reuses its rows, so a row found while the previous folder was shown could be
    relabelled under the pointer.
    """
    page.locator(".jp-BreadCrumbs-home").click()
    parts = path.split("/")
    for depth, part in enumerate(parts):
        folder = root.joinpath(*parts[:depth])
        entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        page.wait_for_function(
            "(names) => JSON.stringify([...document.querySelectorAll("
            "'.jp-DirListing-content .jp-DirListing-itemText')].map(e => e.textContent).sort())"
            " === JSON.stringify(names)", arg=entries, timeout=UI_MS)
        page.locator(".jp-DirListing-content .jp-DirListing-itemText").get_by_text(
            part, exact=True).dblclick()


# --------------------------------------------------------------------------- 1. student


@pytest.fixture(scope="module")
def file_browser(context: BrowserContext, lab: LabServer) -> Iterator[Page]:
    page = open_lab(context, lab, "student", "")  # at the root: nothing moves the listing
    yield page
    page.close()


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS)
def test_student_opens_notebook_with_the_course_kernel(path, file_browser, course):
    page = file_browser
    open_from_file_browser(page, course, f"notebooks/{path}")
    expect(page.locator(".lm-TabBar-tab.jp-mod-current")).to_contain_text(Path(path).name)
    nb = Notebook(page, course / "notebooks" / path)
    nb.wait_ready(rendered=False)  # the title is rendered (below), the rest comes lazily
    title = re.sub(r"[`*]", "", nb.read().cells[0].source.splitlines()[0].lstrip("# ")).strip()
    expect(nb.panel.locator(".jp-MarkdownOutput h1").first).to_contain_text(title)
    shot(page, f"1_open_{Path(path).stem}")
    page.get_by_role("menuitem", name="File").click()  # close it and stop its kernel
    page.locator(".lm-Menu").get_by_text("Close and Shut Down Notebook").click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(nb.panel).to_have_count(0)


@pytest.fixture(scope="module")
def runs(context: BrowserContext, lab: LabServer, course: Path) -> Iterator[dict]:
    """Chapter 1 and the training chapter run cell by cell as a student does, and the
    solution of SOLUTION_CHAPTER with Run All, all three at once in tabs of their own.

    Maps each chapter to (its Notebook, the notebook as saved from the UI afterwards); the
    chapter-1 tab stays open for the widget and the typed answer.
    """
    paths = {"01_tensors": student_path("01_tensors"),
             TRAINING_CHAPTER: student_path(TRAINING_CHAPTER),
             "solution": f"solutions/{SOLUTION_CHAPTER}/{SOLUTION_CHAPTER}.ipynb"}
    notebooks = {key: Notebook(open_lab(context, lab, f"run-{key}", path), course / path)
                 for key, path in paths.items()}  # the tabs load side by side
    for nb in notebooks.values():
        nb.wait_ready()
    notebooks["solution"].run_all()
    run_cell_by_cell(notebooks["01_tensors"], notebooks[TRAINING_CHAPTER])
    notebooks["solution"].wait_idle()
    saved = {key: (nb, nb.save()) for key, nb in notebooks.items()}
    shot(notebooks["solution"].page, f"2_solution_{SOLUTION_CHAPTER}")
    failed = [i for i, c in enumerate(saved[TRAINING_CHAPTER][1].cells)
              if any(o.output_type == "error" for o in c.get("outputs", []))]
    notebooks[TRAINING_CHAPTER].cells.nth(failed[0] if failed else 0).scroll_into_view_if_needed()
    shot(notebooks[TRAINING_CHAPTER].page, f"1_run_{TRAINING_CHAPTER}")
    for key in (TRAINING_CHAPTER, "solution"):
        notebooks[key].page.close()
    yield saved
    notebooks["01_tensors"].page.close()


def check_only_unanswered_exercises_fail(saved: nbformat.NotebookNode, chapter: str) -> None:
    code = [c for c in saved.cells if c.cell_type == "code"]
    not_run = [i for i, c in enumerate(saved.cells) if c.cell_type == "code"
               and c.execution_count is None]
    assert not not_run, f"{chapter}: cells {not_run} did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert any(o.ename == "NotImplementedError" for o in errors), (
        f"{chapter}: no unanswered exercise raised NotImplementedError: was it run?")
    bad = unexpected_errors(saved)
    assert not bad, (
        f"{chapter}, run cell by cell by a student who has not answered the exercises yet, "
        "shows errors other than the NotImplementedError of an unanswered exercise (or a "
        "failing check in its test cell). Each such cell should not depend on an exercise's "
        "result, or say which exercise to do first:\n" + "\n".join(bad))


def test_student_runs_chapter_1_cell_by_cell(runs):
    nb, saved = runs["01_tensors"]
    nb.cells.nth(cell_index(saved, f"{TYPED}_solution")).scroll_into_view_if_needed()
    shot(nb.page, "1_run_01_tensors")
    check_only_unanswered_exercises_fail(saved, "01_tensors")


def test_student_runs_a_training_chapter_cell_by_cell(runs):
    check_only_unanswered_exercises_fail(runs[TRAINING_CHAPTER][1], TRAINING_CHAPTER)


def test_student_types_an_answer_and_its_test_passes(runs):
    nb, before = runs["01_tensors"]
    solution = read_notebook(SOLUTIONS / "01_tensors" / "01_tensors.ipynb")
    answer = "\n".join(line for line in
                       solution.cells[cell_index(solution, f"{TYPED}_solution")].source.splitlines()
                       if not line.strip().startswith("### "))
    assert not re.search(r"^\s", answer, re.M), "typing assumes an answer without indentation"
    i = cell_index(before, f"{TYPED}_solution")
    test = cell_index(before, f"{TYPED}_test")
    assert test == i + 1, "the test cell should follow the answer cell"
    assert [o.ename for o in before.cells[test].outputs if o.output_type == "error"], (
        f"{TYPED}_test passed before the exercise was answered")

    nb.cells.nth(i).locator(".cm-content").click()
    nb.page.keyboard.press("Control+a")
    nb.page.keyboard.type(answer)
    nb.page.keyboard.press("Escape")
    nb.run_active(i, code=True)  # the answer; Shift+Enter moves on to the test cell
    nb.run_active(test, code=True)
    nb.cells.nth(i).scroll_into_view_if_needed()
    shot(nb.page, "1_typed_answer_passes")

    after = nb.save()
    assert after.cells[i].source.strip() == answer.strip(), "the typed answer was not kept"
    for j in (i, test):
        errors = [f"{o.ename}: {o.evalue}" for o in after.cells[j].outputs
                  if o.output_type == "error"]
        assert not errors, f"cell {j} fails after the answer was typed: {errors}"
    printed = "".join(o.get("text", "") for o in after.cells[i].outputs)
    assert "torch.Size([5, 3])" in printed, f"the answer cell printed {printed!r}"


# --------------------------------------------------------------------------- 2. solutions


def test_solution_notebook_runs_in_full_without_errors(runs):
    saved = runs["solution"][1]
    counts = [c.execution_count for c in saved.cells if c.cell_type == "code"]
    assert None not in counts, f"Run All stopped early: execution counts {counts}"
    assert counts == sorted(counts), f"cells ran out of order: {counts}"
    errors = [f"cell {i}: {o.ename}: {o.evalue[:200]}" for i, c in enumerate(saved.cells)
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"the solution of {SOLUTION_CHAPTER} fails in JupyterLab:\n" + \
        "\n".join(errors)


# --------------------------------------------------------------------------- 3. widgets


def test_widget_redraws_when_its_slider_moves(runs):
    nb, saved = runs["01_tensors"]
    i = next(k for k, c in enumerate(saved.cells) if WIDGET_CALL in c.source)
    cell = nb.cells.nth(i)
    picture = cell.locator(".jp-OutputArea img.widget-image")
    expect(picture).to_be_visible()
    slider = cell.locator(".widget-hslider", has_text="contrast")
    readout = slider.locator(".widget-readout")
    expect(readout).to_have_text("1.00")
    cell.scroll_into_view_if_needed()
    shot(nb.page, "3_widget_before")
    src, pixels = picture.get_attribute("src"), picture.screenshot()

    box = slider.locator(".noUi-handle").bounding_box()
    assert box, "the contrast slider has no handle on screen"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    nb.page.mouse.move(x, y)
    nb.page.mouse.down()
    nb.page.mouse.move(x + 90, y, steps=6)
    nb.page.mouse.up()

    expect(readout).not_to_have_text("1.00")
    nb.page.wait_for_function("([el, src]) => el.src !== src", arg=[picture.element_handle(), src],
                              timeout=CELL_MS)  # the kernel drew a new picture
    contrast = float(readout.text_content())
    assert contrast > 1.0, f"dragging right should raise the contrast, got {contrast}"
    expect(cell.locator(".jp-OutputArea img.widget-image")).to_be_visible()
    shot(nb.page, "3_widget_after")
    assert picture.screenshot() != pixels, "the picture on screen did not change"


# --------------------------------------------------------------------------- 4. instructor


@pytest.fixture(scope="module")
def instructor(context: BrowserContext, lab: LabServer) -> Iterator[Page]:
    page = open_lab(context, lab, "instructor", "")
    yield page
    page.close()


def test_formgrader_lists_every_assignment(instructor, course):
    page = instructor
    page.get_by_role("menuitem", name="Nbgrader").click()
    page.locator(".lm-Menu").get_by_text("Formgrader", exact=True).click()
    frame = page.frame_locator("iframe")
    expected = sorted(p.name for p in (course / "solutions").iterdir() if p.is_dir())
    assert expected == assignments(), "the course copy lacks chapters of solutions/"
    names = frame.locator("#main-table td.name")
    expect(names.first).to_be_visible()  # the rows arrive together, from one API call
    names = sorted(name.strip() for name in names.all_inner_texts())
    shot(page, "4_formgrader")
    shot(frame.locator("#main-table"), "4_formgrader_assignments")  # every row
    assert names == expected, f"the Formgrader lists {names}, solutions/ has {expected}"


def test_create_assignment_panel_shows_each_cells_grading(instructor, course):
    page = instructor
    path = "solutions/01_tensors/01_tensors.ipynb"
    open_from_file_browser(page, course, path)
    nb = Notebook(page, course / path)
    nb.wait_ready()
    page.locator(".lm-TabBar-tab", has_text="Create Assignment").first.click()
    widgets = page.locator(".nbgrader-CellWidget")
    source = nb.read()
    expect(widgets).to_have_count(len(source.cells))
    graded = [nbgrader_meta(c) for c in source.cells]
    points = sum(m.get("points", 0) for m in graded if m.get("grade") or m.get("task"))
    expect(page.locator(".nbgrader-TotalPointsInput")).to_have_value(str(points))
    for i, meta in enumerate(graded):
        if meta:
            widget = widgets.nth(i)
            expect(widget.locator(".nbgrader-CellType select")).to_have_value(cell_type(meta))
            expect(widget.locator(".nbgrader-CellId input")).to_have_value(meta["grade_id"])
    test = cell_index(source, f"{TYPED}_test")
    nb.select(test)
    widgets.nth(test).scroll_into_view_if_needed()
    expect(widgets.nth(test).locator(".nbgrader-CellType select option:checked")).to_have_text(
        "Autograded tests")
    expect(widgets.nth(test).locator(".nbgrader-CellPoints input")).to_have_value(
        str(graded[test]["points"]))
    shot(page, "4_create_assignment")
    page.locator(".lm-TabBar-tab", has_text="Create Assignment").first.click()  # fold it away


def test_validate_reports_the_failing_tests(instructor, course):
    page = instructor
    path = "validate/01_tensors.ipynb"
    open_from_file_browser(page, course, path)
    nb = Notebook(page, course / path)
    nb.wait_ready()
    nb.panel.locator(".jp-Toolbar-item", has_text="Validate").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Validation Results", timeout=CELL_MS)
    shot(page, "4_validate")
    text = dialog.inner_text()
    dialog.locator(".jp-mod-accept").click()
    tests = [c for c in nb.read().cells if is_test_cell(c)]
    failing = [c for c in tests if nbgrader_meta(c)["grade_id"] != f"{TYPED}_test"]
    assert text.count("The following cell failed:") == len(failing), text[:3000]
    for cell in tests:
        first = cell.source.strip().splitlines()[0]
        passed = nbgrader_meta(cell)["grade_id"] == f"{TYPED}_test"
        assert (first in text) != passed, (
            f"{nbgrader_meta(cell)['grade_id']} should {'pass' if passed else 'fail'}: {first}")
