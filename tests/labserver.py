"""Start a JupyterLab server for a test, talk to its REST API, and stop it with its kernels.

Used by tests/test_lab.py (`make lab` from the repository) and tests/test_browser.py (a lab
on a throw-away course copy, driven by Chromium)::

    with lab_server(["make", "lab", ...], cwd=ROOT, port=port, token=TOKEN, log=path) as lab:
        lab.api("/api/kernelspecs")
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autograde.pgserver import free_port  # noqa: F401 -- re-exported for the tests


@dataclass
class LabServer:
    """A running server: its process (a session leader), port, token and log file."""

    proc: subprocess.Popen
    port: int
    token: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        """Call the REST API with the token; the decoded JSON answer ({} when empty)."""
        req = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else {}

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until /api/status answers; fail with the server log if it exits or is slow."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("/api/status")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}):\n"
                                       f"{self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the server did not answer within {timeout:.0f} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.5)

    def stop(self) -> None:
        """End the server and everything it started (make, jupyter, kernels)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=20)
                return
            except subprocess.TimeoutExpired:
                continue


@contextmanager
def lab_server(command: list[str], cwd: Path, port: int, token: str, log: Path,
               env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[LabServer]:
    """Run ``command`` (which must serve on ``port`` with ``token``) until the block ends."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env=env if env is not None else dict(os.environ),
                                start_new_session=True)
    server = LabServer(proc, port, token, log)
    try:
        server.wait_ready(timeout)
        yield server
    finally:
        server.stop()
