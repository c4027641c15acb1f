"""Whether the background work runs: the scheduler (beat), a worker, the nightly
tier and ledger runs, the dashboard's figures and the points expiry.

When the worker or the beat stops, nothing fails where staff look: tiers, points
and the dashboard simply stop moving, and campaigns wait. The admin home shows
these checks to those who run the platform, and /healthz answers a
monitor with their names and states only (no figures, no personal data).

Every check reads a handful of rows through an index: the home page pays a few
milliseconds for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from campaigns.dashboard.models import KpiSnapshot, SnapshotKind
from loyalty.awards import last_expiry_day
from loyalty.models import SettleRun
from loyalty.services import expiry_run_behind
from segments.models import RecomputeRun, RunStatus

HEARTBEAT_TASK = "campaigns.tasks.send_due_task"  # the beat sends it every minute; a worker runs it
# The beat writes its entries' last run to the database every few minutes (django-celery-beat's sync).
HEARTBEAT_LATE = dt.timedelta(minutes=10)
NIGHTLY_LATE = dt.timedelta(hours=26)  # a nightly run at 03:00 that missed a night


@dataclass(frozen=True)
class Check:
    key: str  # stable, for monitors
    name: str
    ok: bool
    text: str
    link: str = ""


def checks(now: dt.datetime | None = None) -> list[Check]:
    now = now or timezone.now()
    return [*_heartbeat(now), _nightly_tiers(now), _nightly_ledgers(now), _dashboard(now), _expiry(now)]


def _ago(moment: dt.datetime | None) -> str:
    if moment is None:
        return _("never")
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _heartbeat(now: dt.datetime) -> list[Check]:
    entry = PeriodicTask.objects.filter(task=HEARTBEAT_TASK, enabled=True).values("last_run_at").first()
    if entry is None:
        return _without_heartbeat(now)
    done = TaskResult.objects.filter(task_name=HEARTBEAT_TASK).order_by("-date_done").values_list("date_done", flat=True).first()
    sent = entry["last_run_at"]
    beat_ok = sent is not None and now - sent < HEARTBEAT_LATE
    worker_ok = done is not None and now - done < HEARTBEAT_LATE
    if worker_ok and not beat_ok:
        beat_ok = True  # the worker ran the beat's task just now: the beat's own record is merely behind
    beat = Check(
        "beat", _("Scheduler (celery beat)"), beat_ok,
        _("It last sent the every-minute sending task at %(at)s.") % {"at": _ago(sent)}
        + ("" if beat_ok else " " + _start_beat()),
    )
    worker = Check(
        "worker", _("Background worker (celery worker)"), worker_ok,
        _("It last finished the every-minute sending task at %(at)s.") % {"at": _ago(done)}
        + ("" if worker_ok else " " + (
            _("The scheduler is not sending it either: start the scheduler first.") if not beat_ok
            else _start_worker()
        )),
    )
    return [beat, worker]


def _start_beat() -> str:
    return _("Start it (scripts/start does, or: celery -A crm beat): without it no nightly run, sending or journey step happens.")


def _start_worker() -> str:
    return _("Start a worker (celery -A crm worker): imports, tier updates after orders, sending and points wait for one.")


def _without_heartbeat(now: dt.datetime) -> list[Check]:
    """Staff have switched the every-minute sending task off (or deleted it): the beat's and the
    worker's signs of life are then any scheduled entry's last run and any finished task, of
    which the nightly ones come at least once a day."""
    sent = PeriodicTask.objects.filter(enabled=True, last_run_at__isnull=False).order_by("-last_run_at").values_list("last_run_at", flat=True).first()
    done = TaskResult.objects.order_by("-date_done").values_list("date_done", flat=True).first()
    worker_ok = done is not None and now - done < NIGHTLY_LATE
    beat_ok = worker_ok or (sent is not None and now - sent < NIGHTLY_LATE)
    off = _("The every-minute sending task is switched off, so messages due are not sent.")
    beat = Check(
        "beat", _("Scheduler (celery beat)"), beat_ok,
        off + " " + _("The scheduler last sent a task at %(at)s.") % {"at": _ago(sent)} + ("" if beat_ok else " " + _start_beat()),
    )
    worker = Check(
        "worker", _("Background worker (celery worker)"), worker_ok,
        _("It last finished a task at %(at)s.") % {"at": _ago(done)} + ("" if worker_ok else " " + _start_worker()),
    )
    return [beat, worker]


def _nightly_tiers(now: dt.datetime) -> Check:
    runs = RecomputeRun.objects.filter(RecomputeRun.EVERYONE).exclude(status=RunStatus.RUNNING)
    last_done = runs.filter(status=RunStatus.DONE).order_by("-started_at").values("finished_at").first()
    last = runs.order_by("-started_at").values("pk", "status").first()
    finished = last_done["finished_at"] if last_done else None
    failed = last is not None and last["status"] == RunStatus.FAILED
    ok = finished is not None and now - finished < NIGHTLY_LATE and not failed
    text = _("The last nightly or full run of tiers and circles finished at %(at)s.") % {"at": _ago(finished)}
    if failed:
        text += " " + _("The run after it failed: its page says why.")
    elif not ok:
        text += " " + _("Tiers, circles and churn risk are older than a day.")
    link = reverse("admin:segments_recomputerun_change", args=[last["pk"]]) if failed else reverse("admin:segments_recomputerun_changelist")
    return Check("tiers", _("Nightly tier run"), ok, text, link)


def _nightly_ledgers(now: dt.datetime) -> Check:
    finished = (
        SettleRun.objects.filter(scope__in=SettleRun.NIGHTLY_SCOPES).order_by("-started_at", "-id").values_list("finished_at", flat=True).first()
    )
    ok = finished is not None and now - finished < NIGHTLY_LATE
    text = _("The last nightly settle of growth value and points finished at %(at)s.") % {"at": _ago(finished)}
    if not ok:
        text += " " + _("Points that became available since then are not yet shown as available.")
    return Check("ledgers", _("Nightly points settle"), ok, text, reverse("admin:loyalty_settlerun_changelist"))


def _dashboard(now: dt.datetime) -> Check:
    day = KpiSnapshot.objects.filter(kind=SnapshotKind.BASE).order_by("-day").values_list("day", flat=True).first()
    ok = day is not None and day >= timezone.localdate(now) - dt.timedelta(days=1)
    text = _("The dashboard's latest figures are of %(day)s.") % {"day": day or _("no day yet")}
    return Check("dashboard", _("Dashboard figures"), ok, text)


def _expiry(now: dt.datetime) -> Check:
    behind = expiry_run_behind(now) and now - last_expiry_day(now) >= NIGHTLY_LATE  # its beat entry runs at 00:10
    text = (
        _("Points that expired on 1 January are still counted as available by members not settled since: the expiry run has not run this year.")
        if behind else _("The expiry run has run since the last 1 January.")
    )
    return Check("expiry", _("Points expiry"), not behind, text, reverse("admin:loyalty_settlerun_changelist"))


@require_GET
@never_cache
def healthz(request) -> JsonResponse:
    """For a monitor or a load balancer: 503 when the database or the cache does not answer,
    otherwise 200 with "ok" or "degraded" and each background check's state. Names and
    states only: no figures, no times, nothing about members."""
    states = {"database": "ok", "cache": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        states["database"] = "down"
    try:
        cache.set("healthz", "1", 10)
        if cache.get("healthz") != "1":
            raise OSError("the cache did not keep a value")
    except Exception:  # noqa: BLE001 - whatever the backend raises (Redis, files), the answer is "down"
        states["cache"] = "down"
    if states["database"] == "ok":
        states.update({check.key: "ok" if check.ok else "late" for check in checks()})
    down = "down" in states.values()
    status = "down" if down else "ok" if all(state == "ok" for state in states.values()) else "degraded"
    return JsonResponse({"status": status, "checks": states}, status=503 if down else 200)
