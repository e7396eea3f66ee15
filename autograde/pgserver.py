"""A throw-away PostgreSQL server for tests and benchmarks of parallel grading.

::

    with PostgresServer.start() as pg:          # initdb in a temp dir, pg_ctl start
        url = pg.create_database("gradebook")   # postgresql+psycopg2://course@127.0.0.1:<port>/gradebook
        ...                                     # stopped and deleted afterwards

It needs the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<v>/bin``;
``PG_BINDIR`` overrides). The server listens on a free loopback port and on a unix socket in
its folder, trusts local connections (nothing else can reach it) and skips fsync (nothing is
kept). PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` system
user that the Debian package creates, in a folder given to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "course"  # the database superuser the server is initialised with


def bindir() -> Path:
    """The folder of initdb/pg_ctl: PG_BINDIR, else the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: float(Path(p).parts[-3]) if Path(p).parts[-3].replace(
                       ".", "", 1).isdigit() else 0.0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise FileNotFoundError("PostgreSQL server binaries not found: install the Debian package "
                            "`postgresql` (apt-get install postgresql) or set PG_BINDIR")


def available() -> bool:
    try:
        bindir()
    except FileNotFoundError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    owner: pwd.struct_passwd | None  # the system user the server runs as, when we are root

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb into a new temporary folder and start the server on a free port."""
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        # as root, pytest's temp folders are private to root: use /tmp, which postgres can reach
        folder = Path(tempfile.mkdtemp(prefix="course-pg-", dir="/tmp" if owner else None))
        if owner:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        server = cls(folder, 0, bindir(), owner)
        try:
            server._run("initdb", "-D", str(folder / "data"), "-U", USER, "--auth=trust",
                        "--no-locale", "--encoding=UTF8", "--no-sync")
            for attempt in range(3):
                server.port = free_port()
                try:
                    server._run("pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "log"),
                                "-w", "-t", "60", "-o",
                                f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 "
                                "-c fsync=off -c synchronous_commit=off "
                                "-c full_page_writes=off -c max_connections=100", "start")
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
        except BaseException:
            server.cleanup()
            raise
        return server

    def _run(self, tool: str, *args: str) -> str:
        def drop_privileges() -> None:
            if self.owner:
                os.setgroups([])
                os.setgid(self.owner.pw_gid)
                os.setuid(self.owner.pw_uid)

        env = {**os.environ, "LC_ALL": "C", "PGHOST": str(self.folder)}
        proc = subprocess.run([str(self.bin / tool), *args], cwd=self.folder, env=env,
                              capture_output=True, text=True, preexec_fn=drop_privileges,
                              timeout=120)
        if proc.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                               f"{proc.stderr[-2000:]}\n{tail}")
        return proc.stdout

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        self._run("createdb", "-h", str(self.folder), "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def stop(self) -> None:
        if self.port and (self.folder / "data" / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                          "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
