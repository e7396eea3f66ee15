"""`make bench-grading`: what grading one full-course submission costs, in order and in parallel.

A student's full-course submission is the solution notebook of every chosen chapter (all of
solutions/ by default). The benchmark builds a throw-away course with ``--students`` such
submissions and measures, in wall seconds:

- plain execution: each solution notebook run top to bottom (``autograde.bench.plain_run``),
  summed: what one submission costs without any grading machinery;
- grading with 1 worker: ``autograde.grade`` (tamper scan, confined ``nbgrader autograde``,
  checks, report) of every submission, one at a time, SQLite gradebook;
- grading with N workers: the same with ``--jobs N`` on a throw-away PostgreSQL server.

It prints seconds per submission, the ratios grading / plain and 1 worker / N workers (the
speed-up), the same per chapter, and writes them to artifacts/bench_grading.csv. Every
submission must score full marks (the caps and the scan must not hurt honest work).
Not a test: ``python -m autograde.bench_grading [chapters] [--jobs N] [--students K]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from . import grade, records
from .bench import plain_run
from .course import ROOT, SOLUTIONS, Course, assignments, notebook_names, read_notebook
from .pgserver import PostgresServer


@contextmanager
def gradebook_url(url: str | None):
    """Set (or unset) COURSE_GRADEBOOK_URL for the block."""
    saved = os.environ.pop("COURSE_GRADEBOOK_URL", None)
    if url:
        os.environ["COURSE_GRADEBOOK_URL"] = url
    try:
        yield
    finally:
        os.environ.pop("COURSE_GRADEBOOK_URL", None)
        if saved is not None:
            os.environ["COURSE_GRADEBOOK_URL"] = saved


def build(where: Path, chapters: list[str], students: int) -> Course:
    """A course with ``students`` identical full-course submissions (the solutions)."""
    course = Course.build(where, chapters)
    for chapter in chapters:
        course.generate(chapter)
        notebooks = {n: read_notebook(SOLUTIONS / chapter / f"{n}.ipynb")
                     for n in notebook_names(chapter)}
        for i in range(students):
            course.submit(f"student{i + 1:02d}", chapter, notebooks)
    return course


def timed_grading(course: Course, chapters: list[str], jobs: int,
                  url: str | None) -> tuple[float, grade.Batch]:
    with gradebook_url(url):
        start = time.monotonic()
        batch = grade.grade(chapters, jobs=jobs, root=course.root,
                            report=course.root / "reports" / f"jobs{jobs}.csv",
                            log=lambda line: print("   ", line, flush=True))
        return time.monotonic() - start, batch


def check_full_marks(batch: grade.Batch, label: str) -> list[str]:
    problems = [f"{label}: {r.assignment} {r.student} {r.score:g}/{r.max_score:g} {r.status}"
                for r in batch.results if r.score != r.max_score or r.status != "ok"]
    for line in problems:
        print("  NOT FULL MARKS:", line)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograde.bench_grading",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="assignment ids (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel run")
    parser.add_argument("--students", type=int, default=None,
                        help="submissions to grade (default: as many as workers)")
    args = parser.parse_args(argv)
    chapters = args.chapters or assignments()
    students = args.students or args.jobs
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        print(f"building a course with {students} full-course submissions of "
              f"{', '.join(chapters)}", flush=True)
        course = build(Path(tmp) / "course", chapters, students)

        print("plain execution of each solution notebook", flush=True)
        plain: dict[str, float] = {}
        for chapter in chapters:
            plain[chapter] = sum(plain_run(SOLUTIONS / chapter / f"{n}.ipynb")[0]
                                 for n in notebook_names(chapter))
            print(f"    {chapter}: {plain[chapter]:.1f} s", flush=True)

        print("grading, 1 worker, SQLite", flush=True)
        seq_s, seq = timed_grading(course, chapters, 1, None)
        problems += check_full_marks(seq, "1 worker")

        print(f"grading, {args.jobs} workers, PostgreSQL", flush=True)
        with PostgresServer.start() as pg:
            url = pg.create_database("gradebook")
            for chapter in chapters:
                course.nbgrader("generate_assignment", chapter, "--force",
                                env={"COURSE_GRADEBOOK_URL": url})
            par_s, par = timed_grading(course, chapters, args.jobs, url)
            problems += check_full_marks(par, f"{args.jobs} workers")
            if records.scores(url, chapters[0]) != records.scores(course.db_url, chapters[0]):
                problems.append("parallel grades differ from sequential grades")

    rows = table(chapters, students, args.jobs, plain, seq_s, par_s, seq)
    out = ROOT / "artifacts" / "bench_grading.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written to {out.relative_to(ROOT)}")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


def table(chapters: list[str], students: int, jobs: int, plain: dict[str, float],
          seq_s: float, par_s: float, seq: grade.Batch) -> list[dict]:
    """Print the result table; return its rows for the CSV."""
    plain_total = sum(plain.values())
    per_seq, per_par = seq_s / students, par_s / students
    print(f"\n{len(chapters)} chapter(s), {students} submission(s), {os.cpu_count()} cores; "
          f"seconds per full-course submission:")
    print(f"  {'':34s} {'s/submission':>12s} {'vs plain':>9s}")
    print(f"  {'plain execution':34s} {plain_total:12.1f} {1.0:8.2f}x")
    print(f"  {'grading, 1 worker (SQLite)':34s} {per_seq:12.1f} {per_seq / plain_total:8.2f}x")
    label = f"grading, {jobs} workers (PostgreSQL)"
    print(f"  {label:34s} {per_par:12.1f} {per_par / plain_total:8.2f}x")
    print(f"  speed-up of {jobs} workers over 1: {seq_s / par_s:.2f}x\n")
    rows = [{"what": "plain", "chapter": "all", "workers": 1, "seconds_per_submission":
             round(plain_total, 1), "ratio_vs_plain": 1.0},
            {"what": "grading", "chapter": "all", "workers": 1, "seconds_per_submission":
             round(per_seq, 1), "ratio_vs_plain": round(per_seq / plain_total, 2)},
            {"what": "grading", "chapter": "all", "workers": jobs, "seconds_per_submission":
             round(per_par, 1), "ratio_vs_plain": round(per_par / plain_total, 2)}]
    print(f"  {'chapter':24s} {'plain s':>8s} {'graded s':>9s} {'ratio':>6s}  (1 worker)")
    for chapter in chapters:
        graded = [r.seconds for r in seq.results if r.assignment == chapter]
        mean = sum(graded) / max(1, len(graded))
        print(f"  {chapter:24s} {plain[chapter]:8.1f} {mean:9.1f} "
              f"{mean / plain[chapter]:5.2f}x")
        rows.append({"what": "grading", "chapter": chapter, "workers": 1,
                     "seconds_per_submission": round(mean, 1),
                     "ratio_vs_plain": round(mean / plain[chapter], 2)})
    return rows


if __name__ == "__main__":
    sys.exit(main())
