"""Workers yield the CPU to staff's requests (crm/celery.py): each lowers its own
priority to CELERY_WORKER_NICE when it starts, and never raises one it was given."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
STARTS = (
    "import os, django; django.setup(); from crm.celery import _yield_to_people; "
    "_yield_to_people(); print(os.getpriority(os.PRIO_PROCESS, 0))"
)


def niceness(*, nice: str, started_at: int = 0) -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "CELERY_WORKER_NICE": nice}
    command = ["nice", "-n", str(started_at), sys.executable, "-c", STARTS]
    return int(subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.split()[-1])


BASE = os.getpriority(os.PRIO_PROCESS, 0)  # what the test run itself was started at


def test_a_worker_lowers_its_priority_to_the_setting():
    assert niceness(nice="10") == max(BASE, 10)
    assert niceness(nice="0") == BASE  # 0 leaves it as started


def test_a_worker_started_lower_stays_lower():
    assert niceness(nice="10", started_at=15) == min(BASE + 15, 19)


BACKEND = (
    "import os, django; django.setup(); from crm.celery import _yield_to_people; from django.db import connection; "
    "_yield_to_people(); cursor = connection.cursor(); cursor.execute('SELECT pg_backend_pid()'); pid = cursor.fetchone()[0]; "
    "print(os.getpriority(os.PRIO_PROCESS, pid))"
)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL backend on this machine")
@pytest.mark.skipif(os.geteuid() != 0, reason="changing the server's process needs root, its user or CAP_SYS_NICE")
@pytest.mark.skipif(bool(os.environ.get("DATABASE_TRANSACTION_POOLING")), reason="behind a pooler the backends are shared: left alone")
def test_a_workers_database_backend_yields_with_it():
    """The recompute's and the send's work is SQL: the backend doing it takes the worker's priority."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "CELERY_WORKER_NICE": "10"}
    backend = subprocess.run([sys.executable, "-c", BACKEND], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(backend.stdout.split()[-1]) == max(BASE, 10)
