import time
from collections.abc import Callable

import pytest

pytest_plugins = ["tests.crm.fixtures"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fresh_table_sizes():
    """The admin keeps each table's size per process for minutes (crm.admin_base): each test counts its own rows."""
    from crm.admin_base import _table_rows_kept

    _table_rows_kept.clear()
    yield
    _table_rows_kept.clear()


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
def shipped_defaults(transactional_db):
    """The ladder, circles, rights and earning rules the migrations ship: a transactional test before may have flushed them."""
    import importlib

    from django.apps import apps

    from segments.models import Tier

    if not Tier.objects.exists():
        importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
        importlib.import_module("loyalty.migrations.0002_defaults").create(apps, None)


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


class CeleryProcesses:
    """Celery workers and beats started for one test on the test database, all ended
    when it ends; each one's output goes to data/test/celery/. The broker is the
    configured one, or the caller's (the fault suite's own Redis)."""

    def __init__(self, broker_url: str | None = None) -> None:
        from pathlib import Path

        self.broker_url = broker_url
        self.started: list = []
        self.logs_open: list = []
        self.root = Path(__file__).resolve().parents[1]
        self.logs = self.root / "data" / "test" / "celery"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _env(self, extra: dict) -> dict:
        import os

        env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings", "CELERY_TASK_ALWAYS_EAGER": "0"}
        if self.broker_url:
            env |= {"CELERY_BROKER_URL": self.broker_url, "CACHE_URL": self.broker_url[:-1] + "1"}
        return env | extra

    def _start(self, name: str, arguments: list[str], extra: dict):
        import subprocess
        import sys
        from pathlib import Path

        log = open(self.logs / f"{name}-{len(self.started)}.log", "wb")  # noqa: SIM115 - kept open for the process
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crm", *arguments], cwd=self.root, env=self._env(extra), stdout=log, stderr=subprocess.STDOUT
        )
        process.log_path = Path(log.name)
        self.started.append(process)
        self.logs_open.append(log)
        return process

    def worker(self, *, pool: str = "solo", concurrency: int = 1, **extra_env):
        arguments = ["worker", "--pool", pool, "--concurrency", str(concurrency), "-l", "info", "--without-gossip", "--without-mingle"]
        return self._start("worker", arguments, extra_env)

    def beat(self, **extra_env):
        import os

        return self._start("beat", ["beat", "-l", "info", "--max-interval", "1", "-s", os.devnull], extra_env)

    @staticmethod
    def kill(process) -> None:
        import signal

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)

    @staticmethod
    def pool_child(process) -> int:
        """The pid of a prefork worker's pool process (the one that runs the task)."""
        from pathlib import Path

        def child() -> int | None:
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            return int(children[0]) if children else None

        return wait_until(child, seconds=60, what="the worker's pool process")

    def end(self) -> None:
        import subprocess

        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs_open:
            log.close()


@pytest.fixture
def start_worker():
    """start_worker(**env) starts a real Celery worker process on the test database and the configured broker."""
    from crm import celery_app

    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    manager = CeleryProcesses()
    yield manager.worker
    manager.end()
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
