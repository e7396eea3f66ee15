"""`make bench`: time each solution notebook, plainly and as nbgrader autogrades it.

For every notebook: the wall seconds of a plain top-to-bottom execution (what a student
waits for), the seconds of `nbgrader autograde` on the solution (what grading costs; cells
tagged autograde-skip are skipped there), and the quality figure the notebook claims: the
first line of its output starting with "QUALITY:" (e.g. "QUALITY: 98.1 % test accuracy").
Not a test: it prints a table, and writes it to artifacts/bench.csv.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .course import ROOT, SOLUTIONS, Course, assignments, notebook_names, read_notebook


def plain_run(path: Path) -> tuple[float, str]:
    nb = read_notebook(path)
    start = time.monotonic()
    NotebookClient(nb, timeout=600, kernel_name=nb.metadata["kernelspec"]["name"],
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.monotonic() - start
    quality = ""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith("QUALITY:") and not quality:
                    quality = line.removeprefix("QUALITY:").strip()
    return seconds, quality


def autograde_run(assignment: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        course = Course.build(Path(tmp), [assignment])
        course.generate(assignment)
        course.submit("bench", assignment,
                      {n: nbformat.read(SOLUTIONS / assignment / f"{n}.ipynb", 4)
                                            for n in notebook_names(assignment)})
        start = time.monotonic()
        course.autograde(assignment)
        return time.monotonic() - start


def main(chosen: list[str]) -> int:
    rows = []
    print(f"{'notebook':40s} {'run s':>7s} {'autograde s':>12s}  quality")
    for assignment in chosen or assignments():
        graded = autograde_run(assignment)
        for name in notebook_names(assignment):
            seconds, quality = plain_run(SOLUTIONS / assignment / f"{name}.ipynb")
            label = assignment if name == assignment else f"{assignment}/{name}"
            print(f"{label:40s} {seconds:7.1f} {graded:12.1f}  {quality or '-'}", flush=True)
            rows.append({"notebook": label, "run_s": round(seconds, 1),
                         "autograde_s": round(graded, 1), "quality": quality})
    out = ROOT / "artifacts" / "bench.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["notebook", "run_s", "autograde_s", "quality"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
