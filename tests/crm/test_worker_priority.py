"""Workers yield the CPU to staff's requests (crm/celery.py): each lowers its own
priority to CELERY_WORKER_NICE when it starts, and never raises one it was given."""

import os
import subprocess
import sys
from pathlib import Path

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
