"""The supervisor that confines each grading run (autograde/confine.py), on plain commands.

Fast checks of each guarantee the grading command relies on: the wall-time cap kills the
command's session, the memory cap reaches grandchildren (the kernel nbgrader starts), every
process left behind is killed -- one in a new session, and a double fork that dropped its
environment (found only because the supervisor is a child subreaper) -- and a flood of output
is kept to a bounded log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

from autograde import confine

LEAVER = textwrap.dedent("""
    import os, subprocess, sys
    tag = sys.argv[1]
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", tag + "-a"],
                     start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)",
                                       tag + "-b"], {})
        os._exit(0)
""")


def running(tag: str) -> list[int]:
    return [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if tag in confine.cmdline(pid)]


def test_wall_time_cap_kills_the_command():
    outcome = confine.supervise([sys.executable, "-c", "import time; time.sleep(120)"],
                                f"t-{uuid.uuid4().hex}", 0, timeout=1.0)
    assert outcome.timed_out and outcome.returncode == -9
    assert outcome.seconds < 15


def test_memory_cap_reaches_grandchildren():
    code = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "'bytearray(3 * 2 ** 30)'])")
    outcome = confine.supervise([sys.executable, "-c", code], f"m-{uuid.uuid4().hex}", 1.0,
                                timeout=60)
    assert "MemoryError" in outcome.log


def test_every_process_left_behind_is_killed():
    tag = f"confine-leaver-{uuid.uuid4().hex}"
    outcome = confine.supervise([sys.executable, "-c", LEAVER, tag], f"l-{uuid.uuid4().hex}", 0,
                                timeout=60)
    assert outcome.returncode == 0
    assert any(f"{tag}-a" in k for k in outcome.killed), outcome.killed
    assert any(f"{tag}-b" in k for k in outcome.killed), "the double fork without environment"
    assert not outcome.survivors
    assert not running(tag)


def test_marker_finds_processes_with_the_environment_value():
    marker = f"k-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            env={**os.environ, confine.MARKER_VAR: marker})
    try:
        assert confine.marked(marker) == {proc.pid}
        assert confine.marked(marker[:10], prefix=True) == {proc.pid}
        assert not confine.marked(marker[:10])
        killed, survivors = confine.sweep(marker, own_tree=False)
        assert len(killed) == 1 and not survivors
    finally:
        proc.kill()
        proc.wait()


def test_output_flood_is_bounded(tmp_path):
    log = tmp_path / "run.log"
    outcome = confine.supervise(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 20_000_000 + 'END')"],
        f"o-{uuid.uuid4().hex}", 0, timeout=60, log_path=log)
    assert outcome.returncode == 0 and outcome.output_bytes == 20_000_003
    text = log.read_text()
    assert len(text) < confine.LOG_HEAD + confine.LOG_TAIL + 200
    assert text.endswith("END") and "bytes of output dropped" in text


def test_the_supervisor_leaves_its_caller_alone():
    """Only the supervisor process becomes a subreaper and sweeps its own tree: a child of
    the caller that is not part of the command survives."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        confine.supervise([sys.executable, "-c", "pass"], f"b-{uuid.uuid4().hex}", 0, 30)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
