"""Whether the background work runs, on the admin home for those who run the
platform and at /healthz for a monitor: a stopped scheduler or worker, a nightly
run that missed a night or failed, stale dashboard figures."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from campaigns.dashboard.health import HEARTBEAT_TASK
from campaigns.dashboard.kpi import snapshot_build
from crm import roles
from loyalty.services import ledgers_settle
from segments.models import RecomputeRun, RunStatus
from segments.services import tiers_recompute
from tests.crm.factories import SHANGHAI, OrderFactory
from tests.crm.test_roles import user_in

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


def everything_ran():
    """The beat sent the every-minute task and a worker ran it; the nights' runs and the figures are done."""
    PeriodicTask.objects.filter(task=HEARTBEAT_TASK).update(last_run_at=timezone.now())
    TaskResult.objects.create(task_id="beat-1", task_name=HEARTBEAT_TASK, status="SUCCESS")
    OrderFactory(ordered_at=NOW - dt.timedelta(days=3), amount=Decimal("88"))
    tiers_recompute()
    ledgers_settle()
    snapshot_build()


def home(client) -> str:
    return client.get("/admin/").content.decode()


def test_a_fresh_install_says_what_has_not_run_and_how_to_start_it(admin_client):
    with time_machine.travel(NOW, tick=False):
        page = home(admin_client)
        answer = admin_client.get("/healthz")
    assert "celery -A crm beat" in page and 'data-check="worker"' in page and 'data-check="tiers"' in page
    assert "The scheduler is not sending it either" in page  # the worker's line points at the beat first
    assert answer.status_code == 200 and answer["Cache-Control"].startswith("max-age=0")
    assert answer.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "cache": "ok", "beat": "late", "worker": "late", "tiers": "late", "ledgers": "late", "dashboard": "late", "expiry": "late"},
    }


def test_all_running_is_one_quiet_line_then_a_missed_night_shows(admin_client, client):
    with time_machine.travel(NOW, tick=False):
        everything_ran()
        page = home(admin_client)
        assert "Background work runs" in page and 'class="error" data-check' not in page
        assert client.get("/healthz").json()["status"] == "ok"  # no login needed, nothing personal in it
    with time_machine.travel(NOW + dt.timedelta(minutes=30), tick=False):
        TaskResult.objects.create(task_id="beat-2", task_name=HEARTBEAT_TASK, status="SUCCESS")  # a worker ran it, the beat's record lags
        PeriodicTask.objects.filter(task=HEARTBEAT_TASK).update(last_run_at=timezone.now() - dt.timedelta(minutes=20))
        assert client.get("/healthz").json()["status"] == "ok"
    with time_machine.travel(NOW + dt.timedelta(hours=27), tick=False):
        PeriodicTask.objects.filter(task=HEARTBEAT_TASK).update(last_run_at=timezone.now())
        TaskResult.objects.create(task_id="beat-3", task_name=HEARTBEAT_TASK, status="SUCCESS")
        page = home(admin_client)
        checks = client.get("/healthz").json()["checks"]
    assert 'data-check="tiers"' in page and "older than a day" in page and 'data-check="worker"' not in page
    assert {key for key, state in checks.items() if state != "ok"} == {"tiers", "ledgers"}  # the figures are of yesterday: still fine


def test_a_failed_nightly_run_links_to_its_page(admin_client):
    with time_machine.travel(NOW, tick=False):
        everything_ran()
        failed = RecomputeRun.objects.create(as_of=timezone.localdate(), reason="nightly", status=RunStatus.FAILED, message="disk full")
        page = home(admin_client)
    assert "The run after it failed" in page and f"/admin/segments/recomputerun/{failed.pk}/change/" in page


def test_a_cache_that_does_not_answer_is_a_503(client, monkeypatch):
    from django.core.cache import cache

    def refuse(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "set", refuse)
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "down" and answer.json()["checks"]["cache"] == "down"


def test_only_those_who_run_the_platform_see_the_checks(client):
    for role, sees in ((roles.HQ, True), (roles.AUDITOR, True), (roles.SA_OPERATOR, False), (roles.LEADER, False)):
        client.force_login(user_in(role, is_staff=True))
        assert ('data-testid="background-health"' in home(client)) is sees, role


def test_with_the_sending_task_switched_off_the_other_tasks_show_the_beat_and_worker_alive(admin_client, client):
    with time_machine.travel(NOW, tick=False):
        everything_ran()
        PeriodicTask.objects.filter(task=HEARTBEAT_TASK).update(enabled=False)
        TaskResult.objects.create(task_id="night-1", task_name="segments.tasks.recompute_nightly_task", status="SUCCESS")
        page = home(admin_client)
        assert client.get("/healthz").json()["status"] == "ok"  # no false alarm: the nightly tasks still run
        assert "The every-minute sending task is switched off" in page
    with time_machine.travel(NOW + dt.timedelta(hours=27), tick=False):
        checks = client.get("/healthz").json()["checks"]
    assert checks["worker"] == "late" and checks["beat"] == "late"  # and nothing has run for more than a day
