"""`make lab` starts JupyterLab at the repository root and serves the student notebooks.

The server runs with an empty home directory, so everything it needs (the course kernel,
nbgrader's and ipywidgets' extensions) must come from what `make` installs into .venv, and
nothing it serves may be git-ignored: a fresh clone followed by `make lab` gives the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from autograde.course import RELEASE

from .conftest import NOTEBOOKS
from .labserver import free_port, lab_server

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "course-smoke-test"
NBGRADER_SERVER_EXTENSIONS = ("formgrader", "validate_assignment", "assignment_list", "course_list")
LAB_EXTENSIONS = ("@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager")


def git_ignored(paths: list[Path]) -> list[str]:
    """The paths among ``paths`` that git would leave out of a commit (and so of a clone)."""
    relative = [str(p.relative_to(ROOT)) for p in paths]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *relative], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode in (0, 1), f"git check-ignore failed: {proc.stderr}"
    return proc.stdout.split()


@pytest.mark.slow
def test_make_lab_serves_the_student_notebooks(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(home), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    command = ["make", "lab", f"PORT={port}",
               f"LAB_ARGS=--no-browser --ServerApp.token={TOKEN} --ServerApp.ip=127.0.0.1 "
               "--ServerApp.port_retries=0"]
    with lab_server(command, ROOT, port, TOKEN, tmp_path / "lab.log", env) as lab:
        specs = lab.api("/api/kernelspecs")["kernelspecs"]
        assert "dl-course" in specs, f"the course kernel is not registered: {sorted(specs)}"
        assert specs["dl-course"]["spec"]["display_name"] == "Python 3 (DL course)"

        served = sorted(RELEASE.glob("*/*.ipynb"))
        listing = {item["name"] for item in lab.api("/api/contents/notebooks")["content"]}
        assert {a for a, _ in NOTEBOOKS} <= listing, "a chapter in solutions/ is not released"
        assert {p.parent.name for p in served} <= listing
        for path in served:
            model = lab.api(f"/api/contents/{path.relative_to(ROOT).as_posix()}")
            assert model["type"] == "notebook"
            assert model["content"]["metadata"]["kernelspec"]["name"] == "dl-course"
            assert "BEGIN SOLUTION" not in json.dumps(model["content"])
        if shutil.which("git") and (ROOT / ".git").exists():
            ignored = git_ignored([*served, ROOT / "helpers" / "__init__.py", ROOT / "Makefile"])
            assert not ignored, f"git ignores files that `make lab` needs: {ignored}"

        kernel = lab.api("/api/kernels", "POST", {"name": "dl-course"})
        assert kernel["name"] == "dl-course"
        lab.api(f"/api/kernels/{kernel['id']}", "DELETE")

        # the page `make lab` opens (its default URL) is JupyterLab, with nbgrader and widgets
        with urllib.request.urlopen(f"{lab.url}/?token={TOKEN}", timeout=30) as page:
            assert page.url.split("?")[0].endswith("/lab/tree/notebooks"), f"opened {page.url}"
            html = page.read().decode()
        assert "JupyterLab" in html
        for extension in LAB_EXTENSIONS:
            assert extension in html, f"the lab extension {extension} is not installed"
        log = lab.log_tail(100_000)
        for name in NBGRADER_SERVER_EXTENSIONS:
            assert f"nbgrader.server_extensions.{name} | extension was successfully loaded" in log
