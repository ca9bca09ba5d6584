"""PostgreSQL and Redis servers of a test's own, on free loopback ports, to stop, freeze
(SIGSTOP) and restart at will: the machine's shared services are never touched.

Plain classes, no pytest: the fault tests use them through fixtures (tests/faults/conftest.py)
and a bench script may import them as they are. Every wait has a deadline; `close()` thaws,
stops and removes everything, and is safe to call twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {timeout} s")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (PostgreSQL's backends and helpers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (name) state ppid ...": the name may hold spaces, so split after its ")".
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def stop_process(process: subprocess.Popen) -> None:
    """Terminate `process`, and kill it if it is still there after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Freezable:
    """`frozen()` for a server with freeze() (SIGSTOP) and thaw() (SIGCONT)."""

    @contextmanager
    def frozen(self):
        self.freeze()
        try:
            yield
        finally:
            self.thaw()


class PostgresInstance(Freezable):
    """A PostgreSQL cluster in a temporary folder, run by `pg_ctl` on a free port.

    initdb takes seconds: make one per test module or session and give each test its own
    database (`create_database`). As root (PostgreSQL refuses to run as root), the server
    runs as the `postgres` user."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="expertbook-pg-"))
        self.data = self.folder / "data"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            shutil.chown(self.folder, self._user)
        self._frozen: list[int] = []
        self._initialized = False

    # ------------------------------------------------------------------ commands
    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            list(args), user=self._user, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")

    def start(self) -> PostgresInstance:
        """initdb (the first time), then start and wait until it accepts connections."""
        if not self._initialized:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
            self._initialized = True
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` ends open sessions (57P01 to each), `immediate` kills."""
        self.thaw()
        if self.pid() is None:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def pid(self) -> int | None:
        """The postmaster's process id, or None when it is not running."""
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers,
        a new connection is accepted by the kernel and then never served."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError("PostgreSQL is not running")
        self._frozen = [pid, *_children(pid)]
        for each in self._frozen:
            os.kill(each, signal.SIGSTOP)

    def thaw(self) -> None:
        for each in self._frozen:
            with suppress(ProcessLookupError):
                os.kill(each, signal.SIGCONT)
        self._frozen = []

    # ------------------------------------------------------------------ databases
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database `name` (dropped first if there); its URL."""
        engine = sa.create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg2://"),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def close(self) -> None:
        """Thaw, stop at once and remove the folder; safe to call twice."""
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pid = self.pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisInstance(Freezable):
    """A `redis-server` of our own on a free port, without persistence."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="expertbook-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisInstance:
        if self.process is not None and self.process.poll() is None:
            return self
        log = (self.folder / "redis.log").open("a")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        _wait_for(lambda: _listening(self.port), 15, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.thaw()
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
