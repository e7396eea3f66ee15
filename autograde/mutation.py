"""Run every mutant of a notebook inside one kernel and check that the tests catch it.

A mutant is a plausible wrong answer: the whole replacement source of one solution cell
(``autograde/mutants/<assignment>.yml``). Starting a kernel and re-running a notebook for each
of 140+ mutants would take hours, so this runner executes the solution notebook once, the way
nbgrader's autograder does (``NBGRADER_EXECUTION=autograde``, cells tagged ``autograde-skip``
skipped), and after the last test cell of each exercise, for each of its mutants:

1. executes the mutant in place of its solution cell, then every cell from there to the
   exercise's last test cell, and records whether a test cell failed the way nbgrader scores
   failure (an error, or any stderr not matching the ignore pattern, or a time-out); the
   replay stops at the first failing test cell: the mutant is caught;
2. after the last mutant of the exercise, restores the solution the same way and checks the
   tests pass again, so that a mutant that corrupts shared state is reported instead of
   silently poisoning later checks. Mutants run latest-cell first, so each replay re-executes
   every cell an earlier mutant of the exercise touched.

Usage: ``python -m autograde.mutation [assignment ...]`` prints a table and exits non-zero if
any mutant survives.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager

from . import policy
from .course import SOLUTIONS, assignments, load_mutants, nbgrader_meta, notebook_names

EXERCISE_ID = re.compile(r"^((?:ex\d\d_\d+)|(?:cc\d\d))_(solution|test)(?:_[a-z])?$")


def exercise_of(grade_id: str | None) -> tuple[str, str] | None:
    """("ex07_3", "test") for "ex07_3_test_b"; None for other ids."""
    m = EXERCISE_ID.match(grade_id or "")
    return (m.group(1), m.group(2)) if m else None


@dataclass
class CellRun:
    ok: bool
    reason: str = ""


@dataclass
class MutantResult:
    exercise: str
    name: str
    caught: bool
    restored: bool
    detail: str = ""


@dataclass
class NotebookReport:
    notebook: str
    solution_failures: list[str] = field(default_factory=list)
    mutants: list[MutantResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.solution_failures
                and all(m.caught and m.restored for m in self.mutants))


class Kernel:
    """A kernel that runs cells and judges them as nbgrader does."""

    def __init__(self, kernel_name: str, cwd: Path, timeout: float):
        env = {**os.environ, "NBGRADER_EXECUTION": "autograde"}
        self.km = KernelManager(kernel_name=kernel_name)
        # the kernel's own stderr (a TCP notice at start-up) is not a cell's output: drop it
        self.km.start_kernel(cwd=str(cwd), env=env, stderr=subprocess.DEVNULL,
                             extra_arguments=["--HistoryManager.hist_file=:memory:"])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=300)  # generous: a loaded CI machine is slow
        self.timeout = timeout
        self.ignored = re.compile(policy.IGNORED_STDERR)

    def run(self, code: str) -> CellRun:
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + self.timeout
        failure = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.km.interrupt_kernel()
                self._drain(msg_id)
                return CellRun(False, f"timed out after {self.timeout:.0f} s")
            if not self.km.is_alive():
                return CellRun(False, "the kernel died")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error" and not failure:
                failure = f"{content['ename']}: {content['evalue']}"[:300]
            elif kind == "stream" and content["name"] == "stderr" and not failure:
                if not self.ignored.search(content["text"]):
                    failure = "wrote to stderr: " + content["text"].strip()[:300]
            elif kind == "status" and content["execution_state"] == "idle":
                return CellRun(not failure, failure)

    def _drain(self, msg_id: str) -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                msg = self.kc.get_iopub_msg(timeout=1.0)
            except queue.Empty:
                continue
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                return

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def run_notebook(path: Path, mutants: list[dict], timeout: float = policy.CELL_TIMEOUT,
                 log=print) -> NotebookReport:
    """Execute the solution notebook at ``path`` and try each mutant of its exercises."""
    nb = nbformat.read(path, as_version=4)
    report = NotebookReport(path.stem)
    start = time.monotonic()
    cells = [c for c in nb.cells if c.cell_type == "code"
             and policy.SKIP_TAG not in c.get("metadata", {}).get("tags", [])]
    ids = [nbgrader_meta(c).get("grade_id") for c in cells]
    last_test: dict[str, int] = {}
    tests: dict[str, list[int]] = {}
    for i, gid in enumerate(ids):
        parsed = exercise_of(gid)
        if parsed and parsed[1] == "test":
            last_test[parsed[0]] = i
            tests.setdefault(parsed[0], []).append(i)
    by_exercise: dict[str, list[dict]] = {}
    for m in mutants:
        by_exercise.setdefault(m["exercise"], []).append(m)
    for ex, group in by_exercise.items():
        for m in group:
            if m["cell"] not in ids:
                report.mutants.append(MutantResult(ex, m["name"], False, False,
                                                   f"no cell {m['cell']} in {path.name}"))
        if ex not in last_test:
            report.solution_failures.append(f"mutants given for {ex}, which has no test cell")
    kernel_name = nb.metadata.get("kernelspec", {}).get("name", "python3")
    kernel = Kernel(kernel_name, path.parent, timeout)

    def replay(first: int, last: int, replaced: dict[int, str] | None = None,
               stop_at_failure_of: frozenset[int] = frozenset()) -> dict[int, CellRun]:
        out = {}
        for j in range(first, last + 1):
            out[j] = kernel.run((replaced or {}).get(j, cells[j].source))
            if j in stop_at_failure_of and not out[j].ok:
                break  # caught: the cells after it would change nothing but the run time
        return out

    try:
        for i, cell in enumerate(cells):
            run = kernel.run(cell.source)
            parsed = exercise_of(ids[i])
            if parsed and parsed[1] == "test" and not run.ok:
                report.solution_failures.append(f"{ids[i]} fails with the solution: {run.reason}")
            elif not run.ok and not parsed:
                report.solution_failures.append(f"code cell {i} fails: {run.reason}")
            if not parsed or last_test.get(parsed[0]) != i:
                continue
            ex = parsed[0]
            # Latest mutated cell first: each replay then re-runs every cell the previous
            # mutant touched, so the solution needs restoring only once, after the last one.
            group = sorted((m for m in by_exercise.get(ex, []) if m["cell"] in ids),
                           key=lambda m: -ids.index(m["cell"]))
            results = []
            for m in group:
                at = ids.index(m["cell"])
                mutated = replay(at, i, {at: m["code"]}, frozenset(tests[ex]))
                failed = [ids[j] for j in tests[ex] if j in mutated and not mutated[j].ok]
                if not kernel.km.is_alive():
                    kernel.close()
                    kernel = Kernel(kernel_name, path.parent, timeout)
                    replay(0, at - 1)
                reason = "; ".join(f"{ids[j]}: {mutated[j].reason}" for j in tests[ex]
                                   if j in mutated and not mutated[j].ok)
                results.append(MutantResult(ex, m["name"], bool(failed), True,
                                            reason if failed else "all tests passed"))
                log(f"  {'caught ' if failed else 'SURVIVED'} {ex}: {m['name']}")
            if group:
                at = ids.index(group[-1]["cell"])
                restored = replay(at, i)
                still = [ids[j] for j in tests[ex] if j >= at and not restored[j].ok]
                if still:
                    log(f"  restoring the solution of {ex} FAILED: {still}")
                    for result in results:
                        result.restored = False
                        result.detail += (f" | after this exercise's mutants and the solution "
                                          f"restored, still failing: {still}")
                report.mutants.extend(results)
    finally:
        kernel.close()
    report.seconds = time.monotonic() - start
    return report


def run_assignment(assignment: str, log=print) -> list[NotebookReport]:
    """Mutants of every notebook of an assignment (a mutant may name its ``notebook``)."""
    mutants = load_mutants(assignment)
    reports = []
    names = notebook_names(assignment)
    for name in names:
        mine = [m for m in mutants if m.get("notebook", name) == name]
        log(f"{assignment}/{name}: {len(mine)} mutants")
        reports.append(run_notebook(SOLUTIONS / assignment / f"{name}.ipynb", mine, log=log))
    return reports


def main(argv: list[str]) -> int:
    chosen = argv or assignments()
    bad = 0
    for assignment in chosen:
        for rep in run_assignment(assignment):
            caught = sum(m.caught for m in rep.mutants)
            print(f"{assignment}/{rep.notebook}: {caught}/{len(rep.mutants)} mutants caught, "
                  f"{rep.seconds:.1f} s")
            for failure in rep.solution_failures:
                print(f"  SOLUTION: {failure}")
            for m in rep.mutants:
                if not (m.caught and m.restored):
                    print(f"  {m.exercise} '{m.name}': caught={m.caught} restored={m.restored} "
                          f"{m.detail}")
            bad += not rep.ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
