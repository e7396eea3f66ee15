"""A course directory for real nbgrader runs: build one, release, submit, autograde, read scores.

Tests and tools use this to drive the genuine ``nbgrader`` command line on a throw-away copy of
the course, so the repository's own gradebook and folders are never touched::

    course = Course.build(tmp_path, ["01_tensors"])
    course.generate("01_tensors")
    course.submit("alice", "01_tensors", {"01_tensors": notebook})
    course.autograde("01_tensors")
    course.scores("01_tensors")   # {"alice": {"01_tensors": {"ex01_1_test": (2.0, 2.0), ...}}}
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import nbformat.v4
import yaml

from . import records

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "notebooks"
MUTANTS = ROOT / "autograde" / "mutants"


def assignments() -> list[str]:
    """Assignment ids present in solutions/, in course order."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and not p.name.startswith("."))


def notebook_names(assignment: str) -> list[str]:
    """Names (without .ipynb) of the notebooks of one assignment."""
    return sorted(p.stem for p in (SOLUTIONS / assignment).glob("*.ipynb"))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def load_mutants(assignment: str) -> list[dict]:
    """The mutants of an assignment: dicts with exercise, cell, name, code (and notebook).

    They live in ``autograde/mutants/<assignment>.yml``; an assignment with several notebooks
    may keep one file per notebook, ``<assignment>.<notebook>.yml``, whose entries default to
    that notebook.
    """
    entries: list[dict] = []
    paths = [MUTANTS / f"{assignment}.yml", *sorted(MUTANTS.glob(f"{assignment}.*.yml"))]
    for path in paths:
        if not path.exists():
            continue
        found = yaml.safe_load(path.read_text()) or []
        if not isinstance(found, list):
            raise ValueError(f"{path} must hold a list of mutants, got {type(found).__name__}")
        notebook = path.name[len(assignment) + 1:-len(".yml")]
        for entry in found:
            if notebook and isinstance(entry, dict):
                entry.setdefault("notebook", notebook)
            entries.append(entry)
    return entries


#: The course's kernel, as a notebook's metadata names it.
KERNELSPEC = {"name": "dl-course", "language": "python", "display_name": "Python 3 (DL course)"}


def graded_cell(source: str, grade_id: str, points: int = 0,
                solution: bool = False) -> nbformat.NotebookNode:
    """An nbgrader code cell: a solution cell, or (``solution=False``) a locked test cell."""
    meta = {"grade": not solution, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution, "task": False}
    if not solution:
        meta["points"] = points
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": meta})


def course_notebook(cells: list) -> nbformat.NotebookNode:
    """A notebook for the course's kernel with the given cells (tiny made-up assignments)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(KERNELSPEC)})
    nb.cells = list(cells)
    return nb


def with_cells_replaced(nb: nbformat.NotebookNode,
                        sources: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` in which the cells with the given grade ids get new sources."""
    copy = nbformat.from_dict(nb)
    missing = set(sources)
    for cell in copy.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in sources:
            cell.source = sources[gid]
            missing.discard(gid)
    if missing:
        raise KeyError(f"no cells with grade ids {sorted(missing)}")
    return copy


@dataclass
class Course:
    """A self-contained nbgrader course directory (config, grading code, chapters)."""

    root: Path

    @classmethod
    def build(cls, where: Path, chapters: list[str], extra_sources: dict | None = None) -> Course:
        """Copy the config, the grading package and the given chapters into ``where``.

        ``extra_sources`` maps an assignment id to ``{notebook name: NotebookNode}`` for
        assignments made up on the spot (tests of nbgrader's traps).
        """
        where.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "nbgrader_config.py", where / "nbgrader_config.py")
        (where / "autograde").mkdir(exist_ok=True)
        for module in (ROOT / "autograde").glob("*.py"):
            shutil.copy(module, where / "autograde" / module.name)
        for chapter in chapters:
            shutil.copytree(SOLUTIONS / chapter, where / "solutions" / chapter,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        for assignment, notebooks in (extra_sources or {}).items():
            folder = where / "solutions" / assignment
            folder.mkdir(parents=True, exist_ok=True)
            for name, nb in notebooks.items():
                nbformat.write(nb, folder / f"{name}.ipynb")
        return cls(where)

    def nbgrader(self, *args: str, env: dict | None = None,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run ``nbgrader <args>`` in the course directory; raise with its log if it fails."""
        inherited = {k: v for k, v in os.environ.items()
                     if k not in ("NBGRADER_EXECUTION", "COURSE_GRADEBOOK_URL")}
        full_env = {**inherited, **(env or {})}
        bindir = Path(sys.executable).parent  # nbgrader calls `alembic` from PATH
        full_env["PATH"] = f"{bindir}{os.pathsep}{full_env.get('PATH', '')}"
        exe = bindir / "nbgrader"
        proc = subprocess.run([str(exe), *args], cwd=self.root, env=full_env, text=True,
                              capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def generate(self, assignment: str) -> Path:
        """``nbgrader generate_assignment``: fills the gradebook and writes notebooks/<id>/."""
        self.nbgrader("generate_assignment", assignment, "--force")
        return self.root / "notebooks" / assignment

    def submit(self, student: str, assignment: str,
               notebooks: dict[str, nbformat.NotebookNode]) -> Path:
        """Place a submission as ``nbgrader collect`` would: submitted/<student>/<assignment>/."""
        folder = self.root / "autograde" / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name, nb in notebooks.items():
            nbformat.write(nb, folder / f"{name}.ipynb")
        (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
        return folder

    def autograde(self, assignment: str, env: dict | None = None,
                  timeout: float | None = None) -> subprocess.CompletedProcess:
        """``nbgrader autograde`` of every submission of ``assignment``."""
        return self.nbgrader("autograde", assignment, "--force", env=env, timeout=timeout)

    def autograded(self, student: str, assignment: str, notebook: str) -> nbformat.NotebookNode:
        path = self.root / "autograde" / "autograded" / student / assignment / f"{notebook}.ipynb"
        return read_notebook(path)

    @property
    def db_url(self) -> str:
        return "sqlite:///" + str(self.root / "autograde" / "gradebook.db")

    def scores(self, assignment: str) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
        """student -> notebook -> grade id -> (score, max score), from the gradebook; cells
        worth no points and cells that wait for an instructor's grade (:meth:`pending_manual`)
        are left out."""
        pending = self.pending_manual(assignment)
        return {s: {n: {gid: v for gid, v in cells.items()
                        if v[1] and gid not in pending.get(s, {}).get(n, [])}
                    for n, cells in nbs.items()}
                for s, nbs in records.scores(self.db_url, assignment).items()}

    def pending_manual(self, assignment: str) -> dict[str, dict[str, list[str]]]:
        """student -> notebook -> ids of the cells that wait for an instructor's grade."""
        return records.pending_manual(self.db_url, assignment)
