"""`make student-bundle` writes the zip a teacher hands out: everything students need, and no
solutions, hidden tests, mutants, grading code or tests (tools/student_bundle.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile

import nbformat
import pytest

from autograde.course import RELEASE, ROOT, SOLUTIONS, nbgrader_meta

PREFIX = "dl-course-student/"
TOP_LEVEL = {"README.md", "notebooks", "helpers", "pyproject.toml", "requirements.lock",
             "environment.yml"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "student.zip"
    proc = subprocess.run(["make", "-s", "student-bundle", f"BUNDLE={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(out) as zf:
        files = {name.removeprefix(PREFIX): zf.read(name) for name in zf.namelist()}
    assert all(name.startswith(PREFIX) for name in zipfile.ZipFile(out).namelist())
    return out, files


def test_holds_what_students_need_and_nothing_else(bundle):
    _, files = bundle
    assert {name.split("/")[0] for name in files} == TOP_LEVEL
    for name in files:
        parts = name.split("/")
        assert parts[0] not in ("solutions", "autograde", "tests", "tools", "docs"), name
        assert not name.endswith((".yml", ".yaml")) or name == "environment.yml", name
        assert "__pycache__" not in parts and ".ipynb_checkpoints" not in parts, name
        assert not (parts[0] == "notebooks" and name.endswith(".py")), f"a jupytext twin: {name}"
    for module in (ROOT / "helpers").glob("*.py"):
        assert files[f"helpers/{module.name}"] == module.read_bytes()
    for name in ("pyproject.toml", "requirements.lock", "environment.yml"):
        assert files[name] == (ROOT / name).read_bytes()
    assert files["README.md"] == (ROOT / "docs" / "STUDENT_README.md").read_bytes()
    readme = files["README.md"].decode()
    assert "jupyter lab notebooks" in readme and "requirements.lock" in readme
    assert "nbgrader" not in readme, "the student README is not the instructor's"
    project = tomllib.loads(files["pyproject.toml"].decode())
    assert project["project"]["readme"] in files, "pip install needs the README pyproject names"


def test_every_released_notebook_is_in_it_unchanged(bundle):
    _, files = bundle
    released = sorted(p.relative_to(ROOT).as_posix() for p in RELEASE.rglob("*.ipynb")
                      if ".ipynb_checkpoints" not in p.parts)
    assert released, "no released notebooks?"
    assert sorted(n for n in files if n.endswith(".ipynb")) == released
    for name in released:
        assert files[name] == (ROOT / name).read_bytes(), f"{name} differs from notebooks/"


def test_no_solutions_and_no_hidden_tests_anywhere(bundle):
    _, files = bundle
    for name, data in files.items():
        for marker in (b"BEGIN SOLUTION", b"END SOLUTION", b"BEGIN HIDDEN TESTS",
                       b"END HIDDEN TESTS"):
            assert marker not in data, f"{name} contains {marker.decode()}"


def _solution_only_lines(path) -> set[str]:
    """Non-trivial lines inside the solution regions of a solution notebook, and nowhere
    outside them (starter code around a region is handed out)."""
    inside_lines, outside_lines, inside = set(), set(), False
    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.split("\n"):
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            else:
                (inside_lines if inside else outside_lines).add(line.strip())
    return {line for line in inside_lines - outside_lines if len(line) >= 12}


def test_the_notebooks_hold_no_solution_code(bundle):
    """Beyond the markers: no line of a solution region reaches any cell students get."""
    _, files = bundle
    for name, data in files.items():
        if not name.endswith(".ipynb"):
            continue
        secret = _solution_only_lines(SOLUTIONS / name.removeprefix("notebooks/"))
        assert secret, f"{name}: its solution notebook has no solution region?"
        nb = nbformat.reads(data.decode(), as_version=4)
        for index, cell in enumerate(nb.cells):
            leaked = {line.strip() for line in cell.source.split("\n")} & secret
            where = nbgrader_meta(cell).get("grade_id") or f"cell {index}"
            assert not leaked, f"{name}: {where} holds solution code {sorted(leaked)[:3]}"


def test_refuses_to_bundle_hidden_tests(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import student_bundle
    finally:
        sys.path.remove(str(ROOT / "tools"))
    leaky = tmp_path / "leaky.ipynb"
    leaky.write_text("### BEGIN HIDDEN TESTS\nassert secret\n### END HIDDEN TESTS")
    monkeypatch.setattr(student_bundle, "contents", lambda: [(leaky, "notebooks/x.ipynb")])
    with pytest.raises(ValueError, match="solutions or hidden tests"):
        student_bundle.build(tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_the_bundle_installs_as_a_package(bundle, tmp_path):
    """What the student README tells students to run: pip builds the helpers package."""
    out, _ = bundle
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path / "wheels"),
                           str(tmp_path / PREFIX)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list((tmp_path / "wheels").glob("*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as whl:
        assert "helpers/checks.py" in whl.namelist()
