"""Throwaway PostgreSQL and Redis servers that fault tests may stop and restart.

The shared servers on 127.0.0.1:5432 and :6379 serve every test run on the
machine, so a test that stops them breaks other people's runs. Fault tests use
these private instances instead: each lives in a temporary directory, listens
on a free loopback port, keeps nothing worth keeping, and belongs to the test
session that made it. Under CI (``CI`` set) failing to make one is a test
failure; elsewhere the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import unavailable
from workers import WORKER, worker_number

PG_BIN = Path(os.environ.get("VOICEWATCH_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A port the kernel picks (from its ephemeral range): for a server never restarted."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: Ports for servers a test stops and starts again on the same port: below the kernel's
#: ephemeral range (``ip_local_port_range``, 32768-60999 on Linux), one block per xdist
#: worker. A port the kernel picks is from that range, and while a test's private
#: PostgreSQL was down for 10 s the other worker's test server was given its port
#: (bound to port 0): the restart failed with "could not create any TCP/IP sockets".
RESTARTABLE_BASE = 21_000
_BLOCK = 400
_handed_out: set[int] = set()


def restartable_port() -> int:
    """A free loopback port that no socket bound to port 0 can take while its server is down."""
    start = RESTARTABLE_BASE + _BLOCK * worker_number(WORKER)
    for port in range(start, start + _BLOCK):
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {start}-{start + _BLOCK - 1}")


def wait_for(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


class PrivatePostgres:
    """A PostgreSQL cluster of our own: initdb in a temp dir, trust auth, loopback only.

    ``initdb`` refuses to run as root, so as root the binaries run as the
    ``postgres`` OS user (``runuser``) on a directory chowned to it.
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            self._prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._prefix, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def init(self) -> None:
        """Create the cluster; raises RuntimeError with initdb's words when it cannot."""
        self.sockets.mkdir(parents=True)
        if self._prefix:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        done = self._run(
            str(PG_BIN / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--no-sync",
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        # fsync is off: the faults here are clean restarts, never a lost machine,
        # and the shared disk is spared the flushes.
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        done = self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {self._log_tail()}")

    def stop(self) -> None:
        """Stop it the way an operator would for maintenance (fast: roll back, disconnect)."""
        done = self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip()} {self._log_tail()}")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server comes back."""
        self.stop()
        self.start()

    def ready(self) -> bool:
        done = self._run(
            str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), timeout=10
        )
        return done.returncode == 0

    def running(self) -> bool:
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status").returncode == 0

    def create_database(self, name: str) -> str:
        """A new empty database (dropped first if a previous test left it); returns its URL."""
        for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
            done = self._run(
                str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"{sql}: {done.stderr.strip()}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-800:]
        except OSError:
            return ""


def make_private_postgres() -> PrivatePostgres:
    """Build and start a cluster, or fail/skip with the reason."""
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL binaries not found in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="voicewatch-pg-"))
    server = PrivatePostgres(root, restartable_port())
    try:
        server.init()
        # A free port is free only when we looked: another test run on the machine
        # may take it before the postmaster binds it. Then try the next one.
        for tries_left in (2, 1, 0):
            try:
                server.start()
                break
            except RuntimeError as exc:
                if tries_left == 0 or "could not create any TCP/IP sockets" not in str(exc):
                    raise
                server.port = restartable_port()
                server.url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    except (RuntimeError, OSError, subprocess.SubprocessError, LookupError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"cannot make a private PostgreSQL: {exc}")
    return server


def destroy_private_postgres(server: PrivatePostgres) -> None:
    try:
        if server.running():
            server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` subprocess we own: no RDB, no AOF, so a restart empties it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log = root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait for PING; raises RuntimeError with its log when it cannot."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.root)]
        self.process = subprocess.Popen(
            command,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        if not wait_for(self.ready, 15):
            self.stop()
            raise RuntimeError(f"redis-server did not answer: {self.log.read_text()[-500:]}")

    def stop(self) -> None:
        """SIGTERM and wait: with nothing to save, everything queued is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def ready(self) -> bool:
        import redis

        try:
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False


def make_private_redis() -> PrivateRedis:
    root = Path(tempfile.mkdtemp(prefix="voicewatch-redis-"))
    server = PrivateRedis(root, restartable_port())
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"cannot make a private Redis: {exc}")
    return server


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A session-wide private PostgreSQL that tests may stop, start and restart.

    A test that stops it must start it again (in a ``finally``); the next
    test relies on it running.
    """
    server = make_private_postgres()
    yield server
    destroy_private_postgres(server)


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    """A session-wide private Redis that tests may stop and restart."""
    server = make_private_redis()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
