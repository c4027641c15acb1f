"""The fault suite's machinery: real Celery worker and beat processes on the
test database (PostgreSQL) and a Redis broker of the suite's own, started on a
free port so that a test can restart it mid-send without touching anybody
else's Redis. The tests kill these processes with SIGKILL, as the kernel's
OOM killer or a pulled plug would."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CeleryProcesses, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throw-away redis-server (nothing on disk, like production's broker on this machine)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers, seconds=20, what="redis-server to answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, down_seconds: float = 1.0) -> None:
        """A crash and a restart: everything queued in the broker is gone."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


@pytest.fixture(scope="session")
def fault_broker():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the fault suite runs against PostgreSQL (set DATABASE_URL), as CI's second pass does")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def processes(fault_broker):
    """Start workers and beats with processes.worker() / processes.beat()."""
    manager = CeleryProcesses(fault_broker.url)
    yield manager
    manager.end()


def backend_waiting_on_lock(statement_part: str) -> bool:
    """Some other database session is blocked on a lock in a statement containing statement_part (a table, a function)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction the view is read once, then cached
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query ILIKE %s",
            [f"%{statement_part}%"],
        )
        return cursor.fetchone()[0] > 0
