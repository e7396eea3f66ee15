"""`make lab` starts JupyterLab at the repository root and serves the student notebooks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from autograde.course import RELEASE

from .conftest import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "course-smoke-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, path: str, method: str = "GET", body: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
        return json.loads(text) if text else {}


@pytest.mark.slow
def test_make_lab_serves_the_student_notebooks(tmp_path):
    port = free_port()
    log = (tmp_path / "lab.log").open("w")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    proc = subprocess.Popen(
        ["make", "lab", f"PORT={port}",
         f"LAB_ARGS=--no-browser --ServerApp.token={TOKEN} --ServerApp.ip=127.0.0.1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                api(port, "/api/status")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "JupyterLab did not start within 90 s"
                time.sleep(1)
        specs = api(port, "/api/kernelspecs")["kernelspecs"]
        assert "dl-course" in specs, f"the course kernel is not registered: {sorted(specs)}"
        listing = {item["name"] for item in api(port, "/api/contents/notebooks")["content"]}
        assert {a for a, _ in NOTEBOOKS} <= listing
        for assignment, name in NOTEBOOKS:
            model = api(port, f"/api/contents/notebooks/{assignment}/{name}.ipynb")
            assert model["type"] == "notebook"
            assert model["content"]["metadata"]["kernelspec"]["name"] == "dl-course"
            assert "BEGIN SOLUTION" not in json.dumps(model["content"])
            assert (RELEASE / assignment / f"{name}.ipynb").exists()
        kernel = api(port, "/api/kernels", "POST", {"name": "dl-course"})
        assert kernel["name"] == "dl-course"
        api(port, f"/api/kernels/{kernel['id']}", "DELETE")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={TOKEN}", timeout=30)
        assert b"JupyterLab" in page.read()
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything it started (make, jupyter, kernels)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue
