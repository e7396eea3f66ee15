"""The course's grading command: ``python -m autograde.grade`` (what ``make autograde`` runs).

::

    python -m autograde.grade 07_cnn                       # every submission, one at a time
    python -m autograde.grade 07_cnn --student alice       # one student
    python -m autograde.grade 07_cnn --jobs 8              # 8 workers (PostgreSQL gradebook)
    python -m autograde.grade 07_cnn --backend dask --scheduler tcp://host:8786

One task per (student, assignment), run by any worker (in order, a thread pool, or Dask):

1. hash the submitted files (and keep a copy): afterwards they are proven unchanged, or
   restored and the submission scored 0;
2. run the tamper scan (:mod:`autograde.tamper`) on each submitted notebook, and compare its
   test cells with the released ones (edited, deleted and tagged test cells are reported;
   nbgrader restores them);
3. run ``nbgrader autograde <a> --student <s> --force`` through :mod:`autograde.confine`: a
   new session, an address-space cap inherited by the kernel (``COURSE_MEM_LIMIT_GB``), a
   wall-time cap (``COURSE_NOTEBOOK_TIMEOUT`` seconds per notebook) and a marker in the
   environment; afterwards every process it left behind is killed;
4. check that the gradebook changed only where nbgrader writes for this student (the kernel
   runs as the grader's user: it could have written to the gradebook), restoring what changed;
5. score 0 on every graded cell when grading failed (dead kernel, time-out, crash) or the
   gradebook or the submission was tampered with, and on the notebooks the scan flagged --
   recorded as nbgrader's manual score with the reason as comment, so the batch goes on;
6. report per student and notebook: score, maximum, status, reasons, scan findings
   (CSV, readable text and JSON under ``autograde/reports/``).

The gradebook is ``COURSE_GRADEBOOK_URL`` (SQLite in ``autograde/`` by default). SQLite takes
one writer at a time: ``--jobs N>1`` and ``--backend dask`` need a database server
(PostgreSQL). The per-cell time-out is nbgrader's (``COURSE_CELL_TIMEOUT``), the output kept
per cell ``COURSE_MAX_OUTPUT_KB`` (both in nbgrader_config.py).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from sqlalchemy.exc import OperationalError

from . import confine, records
from .course import ROOT, nbgrader_meta
from .preprocessors import TRUNCATION_NOTE

#: Default caps, overridden by the environment variables of the same meaning.
MEMORY_GB = 8.0  # COURSE_MEM_LIMIT_GB: address space per process (0: no cap; needed on CUDA)
NOTEBOOK_TIMEOUT = 900.0  # COURSE_NOTEBOOK_TIMEOUT: wall seconds per notebook of a submission
STARTUP_GRACE = 60.0  # added once per submission: nbgrader and kernel start-up

#: Reason codes, most important first: a submission's status is its first reason.
REASONS = {
    "tampering": "the tamper scan flagged the notebook: its graded cells score 0",
    "gradebook-modified": "the gradebook was written during grading: restored, submission 0",
    "submission-modified": "submitted files changed during grading: restored, submission 0",
    "timeout": "grading did not finish in time: submission 0",
    "kernel-died": "the kernel died: submission 0",
    "memory": "memory cap reached",
    "grader-error": "nbgrader failed: submission 0",
    "cell-timeout": "a cell hit the per-cell time-out",
    "system-exit": "a cell raised SystemExit",
    "stray-processes": "processes left running were killed",
    "output-truncated": "output beyond the cap was dropped",
    "test-cell-edited": "a test cell was edited (restored before grading)",
    "test-cell-deleted": "a test cell was deleted (restored before grading)",
    "test-cell-tagged": "a test cell was tagged (tags removed before grading)",
    "missing-notebook": "a notebook was not submitted (scored 0 by nbgrader)",
}


class GradingError(RuntimeError):
    """The batch cannot start (configuration, gradebook, caps): the message says why."""


@dataclass(frozen=True)
class Limits:
    """Caps for one submission's grading run."""

    memory_gb: float = MEMORY_GB
    notebook_timeout: float = NOTEBOOK_TIMEOUT

    @classmethod
    def from_env(cls) -> Limits:
        return cls(float(os.environ.get("COURSE_MEM_LIMIT_GB", MEMORY_GB)),
                   float(os.environ.get("COURSE_NOTEBOOK_TIMEOUT", NOTEBOOK_TIMEOUT)))


@dataclass(frozen=True)
class CourseConfig:
    """What the grading command needs of nbgrader_config.py."""

    root: str
    course_id: str
    db_url: str
    source: str
    submitted: str
    autograded: str
    release: str

    @classmethod
    def load(cls, root: Path | str = ROOT) -> CourseConfig:
        """Read ``<root>/nbgrader_config.py`` the way nbgrader does."""
        from traitlets.config.loader import PyFileConfigLoader

        root = Path(root).resolve()
        if not (root / "nbgrader_config.py").exists():
            raise GradingError(f"no nbgrader_config.py in {root}: give the course folder (--root)")
        cd = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config().CourseDirectory
        return cls(str(root), cd.course_id, cd.db_url, cd.source_directory,
                   cd.submitted_directory, cd.autograded_directory, cd.release_directory)

    def submission(self, student: str, assignment: str) -> Path:
        return Path(self.root, self.submitted, student, assignment)

    def autograded_dir(self, student: str, assignment: str) -> Path:
        return Path(self.root, self.autograded, student, assignment)

    def released(self, assignment: str) -> Path:
        return Path(self.root, self.release, assignment)

    def sources(self, assignment: str) -> Path:
        return Path(self.root, self.source, assignment)

    def students(self, assignment: str) -> list[str]:
        """Students with a submission of ``assignment``."""
        base = Path(self.root, self.submitted)
        return sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())

    @property
    def sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")


@dataclass(frozen=True)
class Task:
    """One (student, assignment) to grade; picklable, so any worker can run it."""

    course: CourseConfig
    assignment: str
    student: str
    limits: Limits
    marker: str
    exclusive: bool  # no other task runs meanwhile: every gradebook row can be checked
    threads: int
    log_dir: str
    baseline: records.Snapshot  # definitions and this student's rows when the batch started


@dataclass
class Reason:
    code: str
    message: str


@dataclass
class NotebookScore:
    notebook: str
    score: float
    max_score: float
    findings: list[str] = field(default_factory=list)


@dataclass
class Result:
    """The outcome of one task."""

    assignment: str
    student: str
    status: str = "ok"
    reasons: list[Reason] = field(default_factory=list)
    notebooks: list[NotebookScore] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    killed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # for the batch: not this student's fault
    rows: records.Snapshot | None = None  # the student's gradebook rows after grading

    def add(self, code: str, message: str) -> None:
        if code not in REASONS:
            raise ValueError(f"unknown reason code {code!r}")
        self.reasons.append(Reason(code, message))

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    @property
    def score(self) -> float:
        return sum(n.score for n in self.notebooks)

    @property
    def max_score(self) -> float:
        return sum(n.max_score for n in self.notebooks)


# --- one submission ---------------------------------------------------------------------------


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _scanner() -> Callable | None:
    try:
        from .tamper import scan_notebook
    except ImportError:
        return None
    return scan_notebook


def scan(path: Path, reference: Path | None) -> list[str]:
    """Tamper findings of a submitted notebook, as readable strings ("cell:line [rule] ...")."""
    scan_notebook = _scanner()
    if scan_notebook is None:
        return []
    try:
        findings = scan_notebook(path, reference) if reference else scan_notebook(path)
    except Exception as exc:  # noqa: BLE001 -- a notebook that breaks the scan is not trusted
        return [f"-:0 [unreadable] the tamper scan could not read it: {exc}"[:300]]
    return [f"{f.cell_id}:{f.line} [{f.rule}] {f.message}" for f in findings]


def _cells_by_id(path: Path) -> dict[str | None, dict]:
    return {nbgrader_meta(c).get("grade_id"): c for c in nbformat.read(path, as_version=4).cells}


def changed_test_cells(submitted: Path, released: Path, source: Path | None = None) -> list[Reason]:
    """Test cells of the released notebook that the submission edited, deleted or tagged.

    A test cell identical to the instructor's ``source`` version (hidden tests included) is
    not an edit: that is the solution notebook graded as a submission.
    """
    try:
        mine, theirs = _cells_by_id(submitted), _cells_by_id(released)
        original = _cells_by_id(source) if source and source.exists() else {}
    except Exception as exc:  # noqa: BLE001 -- nbgrader reports unreadable notebooks itself
        return [Reason("grader-error", f"{submitted.name} cannot be read: {exc}"[:300])]
    reasons = []
    for gid, cell in theirs.items():
        meta = nbgrader_meta(cell)
        if not (meta.get("grade") and meta.get("locked") and not meta.get("solution")):
            continue
        if gid not in mine:
            reasons.append(Reason("test-cell-deleted", f"{submitted.stem}: {gid} was deleted"))
            continue
        if mine[gid].source not in (cell.source, original.get(gid, cell).source):
            reasons.append(Reason("test-cell-edited", f"{submitted.stem}: {gid} was edited"))
        tags = mine[gid].get("metadata", {}).get("tags", [])
        if tags:
            reasons.append(Reason("test-cell-tagged", f"{submitted.stem}: {gid} tagged {tags}"))
    return reasons


def nbgrader_command(task: Task) -> tuple[list[str], dict[str, str], float]:
    """The ``nbgrader autograde`` of one task, its environment and its wall-time cap."""
    bindir = Path(sys.executable).parent
    exe = bindir / "nbgrader"
    nbgrader = str(exe) if exe.exists() else (shutil.which("nbgrader") or "nbgrader")
    n_notebooks = max(1, len(list(task.course.released(task.assignment).glob("*.ipynb"))))
    wall = task.limits.notebook_timeout * n_notebooks + STARTUP_GRACE
    command = [nbgrader, "autograde", task.assignment, "--student", task.student, "--force",
               f"--CourseDirectory.db_url={task.course.db_url}"]
    # the database URL goes on the command line, not into the kernel's environment
    env = {k: v for k, v in os.environ.items() if k != "COURSE_GRADEBOOK_URL"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs `alembic`
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, str(task.threads))
    return command, env, wall


def run_nbgrader(task: Task) -> confine.Outcome | None:
    """Run nbgrader confined; None when its supervisor did not report."""
    command, env, wall = nbgrader_command(task)
    Path(task.log_dir).mkdir(parents=True, exist_ok=True)
    return confine.supervise(command, task.marker, task.limits.memory_gb, wall,
                             cwd=task.course.root, env=env,
                             log_path=Path(task.log_dir, f"{task.student}.log"))


#: nbgrader's log of a failed run -> (reason code, message), first match wins.
FAILURES = [
    (r"DeadKernelError|Kernel died", "kernel-died",
     "the kernel died (os._exit, a crash, a signal or the memory cap)"),
    (r"CellTimeoutError", "timeout",
     "a cell timed out and the kernel did not answer the interrupt (nbgrader gave up)"),
    (r"MemoryError|Cannot allocate memory", "memory", "nbgrader ran out of memory"),
]


def explain_failure(result: Result, outcome: confine.Outcome | None, task: Task) -> None:
    """Add the reason why nbgrader produced no grades."""
    if outcome is None:
        result.add("grader-error", "the grading supervisor did not report (killed?)")
    elif outcome.timed_out:
        result.add("timeout", f"grading ran past the wall-time cap ("
                   f"{task.limits.notebook_timeout:.0f} s per notebook) and was stopped")
    elif outcome.interrupted:
        result.add("grader-error", "grading was interrupted")
    else:
        for pattern, code, message in FAILURES:
            if re.search(pattern, outcome.log):
                if code == "memory":
                    message += f" (cap {task.limits.memory_gb:g} GiB)"
                result.add(code, message)
                return
        if outcome.returncode and outcome.returncode < 0:
            result.add("grader-error", f"nbgrader was killed by signal {-outcome.returncode}")
            return
        errors = [line for line in outcome.log.splitlines() if "Error" in line or "ERROR" in line]
        result.add("grader-error", (errors[-1] if errors else "nbgrader failed").strip()[:300])


def inspect_outputs(result: Result, task: Task) -> None:
    """Reasons visible in the autograded notebooks: time-outs, memory, exits, truncation."""
    folder = task.course.autograded_dir(task.student, task.assignment)
    note = TRUNCATION_NOTE.split("{")[0]
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        truncated = False
        for index, cell in enumerate(nb.cells):
            label = f"{path.stem}/{nbgrader_meta(cell).get('grade_id') or f'cell {index}'}"
            for out in cell.get("outputs", []):
                if out.output_type == "stream" and note in out.text:
                    truncated = True
                if out.output_type != "error":
                    continue
                value = str(out.get("evalue", ""))
                if out.ename == "CellTimeoutError":
                    result.add("cell-timeout", f"{label} was interrupted after the time-out")
                elif out.ename == "MemoryError" or "allocate memory" in value.lower():
                    result.add("memory", f"{label} ran out of memory "
                                         f"(cap {task.limits.memory_gb:g} GiB)")
                elif out.ename == "SystemExit":
                    result.add("system-exit", f"{label} raised SystemExit")
        if truncated:
            result.add("output-truncated", f"{path.stem}: output beyond the cap was dropped")


def forged_auto_scores(task: Task) -> list[str]:
    """Autograder scores in the gradebook that the autograded notebooks do not earn."""
    from nbgrader.utils import determine_grade, is_grade

    stored = records.auto_scores(task.course.db_url, task.assignment, task.student)
    forged = []
    folder = task.course.autograded_dir(task.student, task.assignment)
    for path in sorted(folder.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if not is_grade(cell):
                continue
            earned, _ = determine_grade(cell)
            key = (path.stem, nbgrader_meta(cell)["grade_id"])
            if earned is not None and key in stored and stored[key] is not None \
                    and abs(stored[key] - earned) > 1e-9:
                forged.append(f"{key[0]}/{key[1]}: gradebook {stored[key]:g}, earned {earned:g}")
    return forged


def grade_submission(task: Task) -> Result:
    """Grade one student's submission of one assignment (see the module docstring)."""
    start = time.monotonic()
    course, a, s = task.course, task.assignment, task.student
    url = course.db_url
    result = Result(a, s)
    folder = course.submission(s, a)
    released = course.released(a)
    findings: dict[str, list[str]] = {}
    for name in sorted(p.stem for p in released.glob("*.ipynb")):
        path, reference = folder / f"{name}.ipynb", released / f"{name}.ipynb"
        if not path.exists():
            result.add("missing-notebook", f"{name}.ipynb was not submitted")
            continue
        findings[name] = scan(path, reference)
        result.reasons.extend(changed_test_cells(path, reference,
                                                 course.sources(a) / f"{name}.ipynb"))
    hashes = digest(folder)
    with tempfile.TemporaryDirectory(prefix="grading-backup-") as backup:
        shutil.copytree(folder, Path(backup, "submission"))
        before = records.Snapshot.take(url, a)
        outcome = run_nbgrader(task)
        killed, _ = confine.sweep(task.marker, own_tree=False)  # should the supervisor have died
        result.killed = (outcome.killed if outcome else []) + killed
        if outcome:
            result.peak_rss_mb = outcome.peak_rss_mb
        if digest(folder) != hashes:
            shutil.rmtree(folder)
            shutil.copytree(Path(backup, "submission"), folder)
            result.add("submission-modified", "submitted files changed while grading: restored")
    guard_gradebook(task, before, result)
    failed = outcome is None or outcome.returncode != 0 or outcome.timed_out
    if failed:
        explain_failure(result, outcome, task)
    else:
        inspect_outputs(result, task)
        for forged in forged_auto_scores(task):
            result.add("gradebook-modified", f"autograder score forged: {forged}")
    if result.killed:
        shown = ", ".join(k.split(" ", 1)[-1][:100] for k in result.killed[:3])
        result.add("stray-processes", f"{len(result.killed)} killed after grading: {shown}")
    for nb, found in findings.items():
        if found:
            result.add("tampering", f"{nb}: {len(found)} finding(s), first: {found[0]}")
    result.status = next((c for c in REASONS if c in result.codes), "ok")
    record_zeros(task, result, findings, failed)
    final = records.scores(url, a, [s]).get(s, {})
    result.notebooks = [NotebookScore(nb, sum(v[0] for v in cells.values()),
                                      sum(v[1] for v in cells.values()), findings.get(nb, []))
                        for nb, cells in sorted(final.items())]
    result.rows = records.Snapshot.take(url, a).of_student(s)
    result.seconds = round(time.monotonic() - start, 1)
    return result


def guard_gradebook(task: Task, before: records.Snapshot, result: Result) -> None:
    """Restore what changed in the gradebook other than nbgrader's own writes for this
    student: every row changed during the run when the task runs alone; else the assignment's
    definitions and this student's manual columns, as they were when the batch started.

    Alone, the change can only come from this submission: it is scored 0. With other workers
    running, any of them may have made it: it is restored and reported for the batch.
    """
    after = records.Snapshot.take(task.course.db_url, task.assignment)
    others = () if task.exclusive else _students_in(before, after) - {task.student}
    expected = before if task.exclusive else task.baseline
    diffs, odd = records.changes(expected, after, allowed_student=task.student,
                                 ignore_students=others)
    if diffs:
        records.restore(task.course.db_url, diffs)
    problems = []
    if diffs:
        shown = "; ".join(str(d) for d in diffs[:3])
        problems.append(f"{len(diffs)} value(s) changed while grading, restored: "
                        f"{shown}{' ...' if len(diffs) > 3 else ''}")
    if odd:
        problems.append(f"{len(odd)} row(s) added or removed while grading: "
                        + "; ".join(odd[:3]))
    for problem in problems:
        if task.exclusive:
            result.add("gradebook-modified", problem)
        else:
            result.warnings.append(f"{task.assignment}, while grading {task.student} with other "
                                   f"workers: {problem}")


def record_zeros(task: Task, result: Result, findings: dict[str, list[str]],
                 failed: bool) -> None:
    """0 on the whole submission when grading failed or was tampered with at run time; else
    0 on the notebooks the scan flagged."""
    url, a, s = task.course.db_url, task.assignment, task.student
    flagged = [nb for nb, found in findings.items() if found]
    if failed or {"gradebook-modified", "submission-modified"} & set(result.codes):
        top = next(r for r in result.reasons if r.code == result.status)
        records.record_zero(url, a, s, None, f"{top.code}: {top.message}")
    elif flagged:
        records.record_zero(url, a, s, flagged,
                            "tampering: " + "; ".join(findings[nb][0] for nb in flagged)[:500])


def _students_in(*snaps: records.Snapshot) -> set[str]:
    return {v[0] for snap in snaps for t in ("grade", "comment")
            for v in snap.tables.get(t, {}).values() if v[0]}


# --- a batch ----------------------------------------------------------------------------------


@dataclass
class Batch:
    """A grading run: settings, results, and warnings about the run as a whole."""

    run_id: str
    settings: dict
    results: list[Result] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every submission got a score that grading itself explains (no grader errors)."""
        return all(r.status != "grader-error" for r in self.results)


def default_threads(jobs: int) -> int:
    """BLAS/OpenMP threads per grading kernel: the cores shared among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def check_memory_cap(limits: Limits, root: str) -> None:
    """Fail early when a kernel cannot even import torch under the memory cap."""
    if limits.memory_gb <= 0:
        return
    # these imports map about 3.2 GiB, a running kernel about 4 GiB: ask for 2 GiB on top, so
    # that a kernel keeps at least 1 GiB for the notebook's own work
    code = ("import torch, helpers.checks, matplotlib.pyplot, ipykernel.kernelapp\n"
            "room = bytearray(2 * 2 ** 30)")
    outcome = confine.supervise([sys.executable, "-c", code], f"preflight-{secrets.token_hex(4)}",
                                limits.memory_gb, 300, cwd=root)
    if outcome is None:
        raise GradingError("the memory-cap check did not report (python -c 'import torch')")
    if outcome.returncode != 0:
        raise GradingError(
            f"COURSE_MEM_LIMIT_GB={limits.memory_gb:g} is too small: a kernel cannot import "
            f"torch and keep 1 GiB for the notebook (a kernel maps about 4 GiB of address "
            f"space; set 0 for no cap, e.g. on CUDA machines).\n{outcome.log[-1500:]}")


def run_tasks(tasks: list[Task], jobs: int, backend: str,
              scheduler: str | None) -> Iterator[tuple[Task, Result | BaseException]]:
    """Run ``grade_submission`` over ``tasks``; yield each task with its result or error."""
    if backend == "dask":
        yield from _run_dask(tasks, jobs, scheduler)
    elif jobs <= 1:
        for task in tasks:
            yield task, _guarded(task)
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        # threads suffice: each task waits on its own confined nbgrader process
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(grade_submission, t): t for t in tasks}
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], error if error else future.result()


def _guarded(task: Task) -> Result | BaseException:
    try:
        return grade_submission(task)
    except Exception as exc:  # noqa: BLE001 -- one submission's failure must not stop the batch
        return exc


def _run_dask(tasks: list[Task], jobs: int,
              scheduler: str | None) -> Iterator[tuple[Task, Result | BaseException]]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(grade_submission, t, pure=False,
                                 key=f"grade-{t.assignment}-{t.student}-{t.marker}"): t
                   for t in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield task, future.result()
            except Exception as exc:  # noqa: BLE001
                yield task, exc
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def grade(assignments: list[str], students: list[str] | None = None, jobs: int = 1,
          backend: str = "local", scheduler: str | None = None, root: Path | str = ROOT,
          limits: Limits | None = None, report: Path | str | None = None,
          log: Callable[[str], None] = print) -> Batch:
    """Grade every submission of ``assignments`` (or of the given students); write reports."""
    start = time.monotonic()
    course = CourseConfig.load(root)
    limits = limits or Limits.from_env()
    if backend not in ("local", "dask"):
        raise GradingError(f"--backend must be local or dask, not {backend!r}")
    if course.sqlite and (jobs > 1 or backend == "dask"):
        raise GradingError(
            f"the gradebook is SQLite ({records.redact(course.db_url)}), which takes one "
            "writer at a time: grade with --jobs 1, or set COURSE_GRADEBOOK_URL to a PostgreSQL "
            "database (postgresql+psycopg2://user@host/dbname) for --jobs N or --backend dask")
    run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    settings = {"assignments": assignments, "jobs": jobs, "backend": backend,
                "scheduler": scheduler, "gradebook": records.redact(course.db_url),
                "memory_gb": limits.memory_gb, "notebook_timeout_s": limits.notebook_timeout,
                "cell_timeout_s": os.environ.get("COURSE_CELL_TIMEOUT", "nbgrader_config"),
                "root": course.root}
    batch = Batch(run_id, settings)
    report_path = Path(report) if report else default_report(course, assignments)
    log_root = report_path.parent / "logs" / run_id
    per_assignment = submissions(course, assignments, students)
    if _scanner() is None:
        batch.warnings.append("the tamper scan (autograde/tamper.py) is missing: "
                              "tampering is NOT detected in this run")
    check_memory_cap(limits, course.root)
    before: dict[str, records.Snapshot] = {}
    for a, present in per_assignment.items():
        records.prepare(course.db_url, course.course_id, a, present)
        before[a] = records.Snapshot.take(course.db_url, a)
    exclusive = jobs <= 1 and backend == "local"
    tasks = [Task(course, a, s, limits, f"{run_id}:{a}:{s}", exclusive, default_threads(jobs),
                  str(log_root / a), before[a].of_student(s, definitions=True))
             for a, present in per_assignment.items() for s in present]
    log(f"grading {len(tasks)} submission(s) of {', '.join(assignments)}: run {run_id}, "
        f"{jobs} worker(s), {backend}, gradebook {records.redact(course.db_url)}")
    for i, (task, outcome) in enumerate(run_tasks(tasks, jobs, backend, scheduler), start=1):
        result = outcome if isinstance(outcome, Result) else _grader_error(task, outcome)
        batch.results.append(result)
        batch.warnings.extend(result.warnings)
        log(f"[{i}/{len(tasks)}] {task.assignment} {task.student}: "
            f"{result.score:g}/{result.max_score:g} {result.status} ({result.seconds:.0f} s)")
    for a in per_assignment:
        batch.warnings.extend(_check_batch(course.db_url, before[a], batch.results, a))
    batch.results.sort(key=lambda r: (r.assignment, r.student))
    batch.seconds = round(time.monotonic() - start, 1)
    write_reports(batch, report_path)
    log(f"report: {report_path} (.txt, .json)")
    return batch


def submissions(course: CourseConfig, assignments: list[str],
                students: list[str] | None) -> dict[str, list[str]]:
    """assignment -> students to grade (only assignments with submissions)."""
    found: dict[str, list[str]] = {}
    for a in assignments:
        present = [s for s in course.students(a) if not students or s in students]
        if present:
            found[a] = present
    where = f"{Path(course.root, course.submitted)}/<student>/<assignment>/"
    missing = set(students or []) - {s for names in found.values() for s in names}
    if missing:
        raise GradingError(f"no submission of {', '.join(assignments)} by "
                           f"{', '.join(sorted(missing))} under {where}")
    if not found:
        raise GradingError(f"no submissions of {', '.join(assignments)} under {where}")
    return found


def _grader_error(task: Task, error: BaseException) -> Result:
    """A task that raised: record 0 for the submission, say why."""
    result = Result(task.assignment, task.student, status="grader-error")
    result.add("grader-error", f"{type(error).__name__}: {error}"[:300])
    confine.sweep(task.marker, own_tree=False)
    try:
        url = task.course.db_url
        records.record_zero(url, task.assignment, task.student, None,
                            f"grader-error: {result.reasons[0].message}")
        final = records.scores(url, task.assignment, [task.student]).get(task.student, {})
        result.notebooks = [NotebookScore(nb, sum(v[0] for v in c.values()),
                                          sum(v[1] for v in c.values()))
                            for nb, c in sorted(final.items())]
    except Exception as exc:  # noqa: BLE001
        result.add("grader-error", f"the zero could not be recorded either: {exc}"[:300])
    return result


def _check_batch(url: str, before: records.Snapshot, results: list[Result],
                 assignment: str) -> list[str]:
    """Compare the gradebook with what the batch wrote; restore anything else that changed."""
    expected = records.Snapshot(assignment, {t: dict(rows) for t, rows in before.tables.items()})
    unknown: set[str] = set()
    for r in results:
        if r.assignment != assignment:
            continue
        if r.rows is None:
            unknown.add(r.student)
            continue
        for table, rows in r.rows.tables.items():
            kept = {k: v for k, v in expected.tables[table].items() if v[0] != r.student}
            expected.tables[table] = {**kept, **rows}
    diffs, odd = records.changes(expected, records.Snapshot.take(url, assignment),
                                 ignore_students=unknown)
    if diffs:
        records.restore(url, diffs)
    return [f"{assignment}: gradebook changed outside what grading wrote, restored: {d}"
            for d in diffs] + [f"{assignment}: {o}" for o in odd]


# --- reports ----------------------------------------------------------------------------------


def default_report(course: CourseConfig, assignments: list[str]) -> Path:
    name = "-".join(assignments) if len(assignments) <= 3 else "batch"
    return Path(course.root, "autograde", "reports", f"{name}.csv")


CSV_FIELDS = ["assignment", "student", "notebook", "score", "max_score", "status", "reasons",
              "details", "findings", "seconds"]


def write_reports(batch: Batch, csv_path: Path) -> None:
    """``csv_path`` (one row per student and notebook), and .txt and .json beside it."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in batch.results:
            for nb in r.notebooks or [NotebookScore("", 0.0, 0.0)]:
                writer.writerow({
                    "assignment": r.assignment, "student": r.student, "notebook": nb.notebook,
                    "score": nb.score, "max_score": nb.max_score, "status": r.status,
                    "reasons": ";".join(dict.fromkeys(r.codes)),
                    "details": " | ".join(x.message for x in r.reasons),
                    "findings": " | ".join(nb.findings), "seconds": r.seconds})
    csv_path.with_suffix(".txt").write_text(text_report(batch))
    payload = {"run_id": batch.run_id, "settings": batch.settings, "warnings": batch.warnings,
               "seconds": batch.seconds,
               "results": [{**asdict(r), "rows": None, "score": r.score,
                            "max_score": r.max_score} for r in batch.results]}
    csv_path.with_suffix(".json").write_text(json.dumps(payload, indent=1))


def text_report(batch: Batch) -> str:
    """The report an instructor reads: one line per notebook, then the reasons and findings."""
    s = batch.settings
    lines = [f"Grading run {batch.run_id}: {', '.join(s['assignments'])}",
             f"  {len(batch.results)} submission(s) in {batch.seconds:.0f} s, {s['jobs']} "
             f"worker(s), backend {s['backend']}, gradebook {s['gradebook']}",
             f"  caps: memory {s['memory_gb']:g} GiB per process, {s['notebook_timeout_s']:g} s "
             f"per notebook, per-cell time-out {s['cell_timeout_s']}", ""]
    for w in batch.warnings:
        lines.append(f"WARNING: {w}")
    if batch.warnings:
        lines.append("")
    width = max([len(r.student) for r in batch.results] + [7])
    lines.append(f"{'student':{width}s}  {'notebook':28s} {'score':>11s}  status")
    for r in batch.results:
        for nb in r.notebooks or [NotebookScore("-", 0.0, 0.0)]:
            label = f"{r.assignment}/{nb.notebook}"
            lines.append(f"{r.student:{width}s}  {label:28s} {nb.score:5g} / {nb.max_score:<4g} "
                         f"{r.status}")
        for reason in r.reasons:
            lines.append(f"{'':{width}s}    - {reason.code}: {reason.message}")
        for nb in r.notebooks:
            for finding in nb.findings:
                lines.append(f"{'':{width}s}      scan {nb.notebook}: {finding}")
    counts: dict[str, int] = {}
    for r in batch.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines += ["", "statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), "",
              "reason codes:"] + [f"  {k}: {v}" for k, v in REASONS.items()]
    return "\n".join(lines) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograde.grade",
        description="Autograde submissions with nbgrader, safely: caps, tamper scan, "
                    "recorded zeros, a report. Environment: COURSE_GRADEBOOK_URL, "
                    "COURSE_MEM_LIMIT_GB, COURSE_NOTEBOOK_TIMEOUT, COURSE_CELL_TIMEOUT, "
                    "COURSE_MAX_OUTPUT_KB.")
    parser.add_argument("assignments", nargs="+", help="assignment ids, e.g. 07_cnn")
    parser.add_argument("--student", action="append", dest="students", metavar="S",
                        help="grade only this student (repeatable)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="workers (N>1 needs a PostgreSQL gradebook); default 1")
    parser.add_argument("--backend", choices=["local", "dask"], default="local",
                        help="local: this machine; dask: a Dask cluster (default local)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--report", default=None,
                        help="CSV report path (default autograde/reports/<assignment>.csv)")
    parser.add_argument("--root", default=str(ROOT), help="course folder (nbgrader_config.py)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        batch = grade(args.assignments, args.students, args.jobs, args.backend, args.scheduler,
                      args.root, report=args.report)
    except (GradingError, records.GradebookError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(f"error: the gradebook cannot be opened: {str(exc.orig or exc).strip()}",
              file=sys.stderr)
        return 2
    print(text_report(batch))
    return 0 if batch.ok else 1


if __name__ == "__main__":
    # run as autograde.grade, not __main__: Dask workers find the task function by that name
    from autograde.grade import main as _main

    sys.exit(_main())
