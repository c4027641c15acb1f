import time
from collections.abc import Callable

import pytest

pytest_plugins = ["tests.crm.fixtures"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-passphrase-42")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(autouse=True)
def english(settings):
    """Tests read English messages; tests of the Chinese default use the `chinese` fixture."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def chinese(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "zh-hans"
    with translation.override("zh-hans"):
        yield


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def start_worker():
    """start_worker(**env) starts a real Celery worker process on the test database and the configured broker."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from crm import celery_app

    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    processes = []

    def start(**extra_env):
        env = {
            **os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings", "CELERY_TASK_ALWAYS_EAGER": "0", **extra_env,
        }
        command = [sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool", "solo", "-l", "warning", "--without-gossip", "--without-mingle"]
        processes.append(subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1], env=env))
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)
    celery_app.conf.task_always_eager = True


def wait_until(condition: Callable[[], object], *, seconds: float = 120, what: str = "the condition") -> object:
    """Poll every 0.1 s until condition() is truthy; fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
