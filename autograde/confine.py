"""Run one command confined, and leave no process of it behind.

The grading command runs ``nbgrader autograde`` for one submission through this supervisor,
a process of its own (:func:`supervise` starts it and reads its report)::

    python autograde/confine.py --marker RUN:alice --memory-gb 8 --timeout 900 \\
        --log autograded.log -- nbgrader autograde 07_cnn --student alice --force

The supervisor

- makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): a process that the
  command leaves behind -- a background ``Popen(start_new_session=True)``, a double fork that
  called ``setsid`` -- is re-parented to the supervisor instead of init, so it stays findable;
- starts the command in a new session with an address-space cap (``RLIMIT_AS``, inherited by
  the Jupyter kernel nbgrader starts), no core dumps and a file-size cap, and puts
  ``COURSE_GRADING_MARKER=<marker>`` in its environment (inherited by everything it starts);
- reads the command's output with bounded memory (the first and last bytes are kept in the log
  file, a flood in between is counted and dropped);
- kills the command's session when the wall time is up, or when it is told to stop (SIGINT,
  SIGTERM, or the death of the grading process that started it: ``PR_SET_PDEATHSIG``);
- afterwards freezes and kills every descendant and every process whose environment carries
  the marker, until none is left, and reaps them;
- prints one JSON object: exit status, whether it timed out, seconds, peak memory of the
  command and its kernel, and the processes it had to kill.

Only the standard library is used: the supervisor starts in a few milliseconds.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Environment variable that tags every process started for one grading task.
MARKER_VAR = "COURSE_GRADING_MARKER"

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GIB = 2**30
#: A submission may not write files larger than this (a disk-filling loop dies instead).
FILE_SIZE_LIMIT = 2 * GIB
LOG_HEAD = 64 * 1024
LOG_TAIL = 256 * 1024


@dataclass
class Outcome:
    """What happened to a confined command."""

    returncode: int | None
    timed_out: bool
    seconds: float
    peak_rss_mb: float
    killed: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    output_bytes: int = 0
    interrupted: bool = False
    log: str = ""


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make orphaned descendants of this process re-parent to it (Linux); False elsewhere."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def limiter(memory_bytes: int | None) -> Callable[[], None]:
    """A ``preexec_fn`` that caps address space (when given), core dumps and file sizes."""

    def apply() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        cap = FILE_SIZE_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FILE_SIZE_LIMIT)
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    return apply


# --- finding processes ------------------------------------------------------------------------


def _proc_ids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return int(fields[1]), fields[0]


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200] or "?"


def descendants(root: int) -> set[int]:
    """Every living (non-zombie) process below ``root`` in the process tree."""
    children: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for pid in _proc_ids():
        info = _stat(pid)
        if info:
            children.setdefault(info[0], []).append(pid)
            states[pid] = info[1]
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if states.get(p) != "Z"}


def marked(value: str, prefix: bool = False) -> set[int]:
    """Living processes whose environment holds ``MARKER_VAR=value`` (or a value starting
    with ``value`` when ``prefix``). Processes of other users cannot be read unless root."""
    needle = f"\0{MARKER_VAR}={value}".encode() + (b"" if prefix else b"\0")
    me = os.getpid()
    found = set()
    for pid in _proc_ids():
        if pid == me:
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + env + b"\0":
            info = _stat(pid)
            if info and info[1] != "Z":
                found.add(pid)
    return found


def reap() -> None:
    """Collect the exit status of every finished child (orphans re-parented to us included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(marker: str | None, own_tree: bool = True,
          patience: float = 10.0) -> tuple[list[str], list[str]]:
    """Kill, until none is left, every descendant of this process (``own_tree``) and every
    process carrying ``marker``. Returns (killed, survivors) as "pid command line" strings."""
    me = os.getpid()
    killed: dict[int, str] = {}
    deadline = time.monotonic() + patience
    victims: set[int] = set()
    while time.monotonic() < deadline:
        reap()
        victims = (descendants(me) if own_tree else set()) | (marked(marker) if marker else set())
        victims.discard(me)
        if not victims:
            break
        for pid in victims:  # freeze first, so nobody forks while the others are killed
            killed.setdefault(pid, cmdline(pid))
            _signal(pid, signal.SIGSTOP)
        for pid in victims:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.05)
    reap()
    return [f"{p} {c}" for p, c in killed.items()], [f"{p} {cmdline(p)}" for p in victims]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- running ----------------------------------------------------------------------------------


class BoundedLog:
    """Keeps the first ``head`` and the last ``tail`` bytes of a stream, counts the rest."""

    def __init__(self, head: int = LOG_HEAD, tail: int = LOG_TAIL):
        self.head, self.tail = bytearray(), bytearray()
        self.head_size, self.tail_size, self.total = head, tail, 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_size - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_size:
                del self.tail[: len(self.tail) - self.tail_size]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {dropped} bytes of output dropped ...]\n".encode() if dropped else b""
        return bytes(self.head + middle + self.tail).decode(errors="replace")


def supervise(command: list[str], marker: str, memory_gb: float, timeout: float,
              cwd: str | Path | None = None, env: dict[str, str] | None = None,
              log_path: str | Path | None = None) -> Outcome | None:
    """Run ``command`` under a supervisor process (this file run as a script) and return its
    report; None when the supervisor did not report (it was killed, say)."""
    supervisor = [sys.executable, "-I", str(Path(__file__).resolve()), "--marker", marker,
                  "--memory-gb", str(memory_gb), "--timeout", str(timeout)]
    if log_path:
        supervisor += ["--log", str(log_path)]
    try:
        proc = subprocess.run([*supervisor, "--", *command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout + 120)
        return Outcome(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError, TypeError):
        return None


def run(command: list[str], marker: str, memory_bytes: int | None, timeout: float,
        cwd: str | None = None, env: dict[str, str] | None = None,
        log_path: str | None = None) -> Outcome:
    """Run ``command`` confined (see the module docstring) and clean up after it.

    Only for a process that does nothing else (the supervisor's ``main``): it becomes a
    subreaper and kills every process below it at the end. Elsewhere, use :func:`supervise`.
    """
    become_subreaper()
    full_env = {**(os.environ if env is None else env), MARKER_VAR: marker}
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=limiter(memory_bytes))
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    log = BoundedLog()
    timed_out = False
    while proc.poll() is None:
        if time.monotonic() - start > timeout or _STOP:
            timed_out = not _STOP
            _kill_group(proc.pid)
            break
        _drain(fd, log, wait=0.2)
    proc.wait()
    _drain(fd, log, wait=0.0)  # what is buffered now; stray writers may keep the pipe open
    seconds = time.monotonic() - start
    killed, survivors = sweep(marker)
    proc.stdout.close()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if log_path:
        Path(log_path).write_text(log.text())
    return Outcome(proc.returncode, timed_out, round(seconds, 2), round(peak, 1), killed,
                   survivors, log.total, bool(_STOP), log.text()[-4000:])


_STOP: list[int] = []  # signals received by the command-line supervisor


def _stop(signum: int, frame: object) -> None:
    _STOP.append(signum)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _drain(fd: int, log: BoundedLog, wait: float) -> None:
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return
    for _ in range(64):  # at most 4 MiB per call, so the time-out is still checked
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        log.add(data)


def memory_bytes(gib: float) -> int | None:
    """Bytes for a cap in GiB; None (no cap) for 0 or less."""
    return int(gib * GIB) if gib > 0 else None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python autograde/confine.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--marker", required=True, help=f"value of {MARKER_VAR} for this task")
    parser.add_argument("--memory-gb", type=float, default=0.0,
                        help="address-space cap per process in GiB (0: none)")
    parser.add_argument("--timeout", type=float, required=True, help="wall seconds allowed")
    parser.add_argument("--log", default=None, help="file for the command's (bounded) output")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command and arguments")
    args = parser.parse_args(list(argv) if argv is not None else None)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)  # stop the command and still clean up after it
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # ... also when the grading process dies
    outcome = run(command, args.marker, memory_bytes(args.memory_gb), args.timeout,
                  log_path=args.log)
    print(json.dumps(asdict(outcome)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
