"""The worker's pool process is killed (SIGKILL, as the OOM killer does) in
the middle of a nightly recompute and of a large import, at the worst moment:
after the transaction has written rows and before it commits. The task comes
back by itself (acks_late + reject_on_worker_lost), and afterwards the
recompute's result equals a clean run and the import is written exactly once.

To kill at that moment every time, the test holds a table lock the work needs
halfway, waits until the worker's transaction is blocked on it, kills, and
releases. (PostgreSQL only notices the dead client when it next writes to it,
so the orphaned transaction runs on until then and is rolled back; the
redelivered task waits for it on the work's own lock.)"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import signal
import warnings
from collections import Counter
from contextlib import contextmanager

import psycopg
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.db import transaction as django_transaction

from crm.models import AuditAction, AuditEvent, Member
from crm.importing.models import ImportJob, ImportMode, ImportStatus
from crm.tasks import import_job_task
from segments.models import ChurnFit, CircleMembership, GroupMove, MemberMetrics, RecomputeRun, RunStatus, TierChange, TierReview
from segments.services import tiers_recompute, tiers_recompute_nightly
from segments.tasks import recompute_nightly_task
from tests.conftest import wait_until
from tests.faults.conftest import backend_waiting_on_lock

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

FIRST = dt.date(2026, 10, 1)
NIGHT = FIRST + dt.timedelta(days=45)  # recency crossed thresholds for many members since FIRST


@contextmanager
def table_locked(table: str):
    """Another session holds SHARE on the table: reads go on, the first write waits."""
    from tests.conftest import _database_url

    with psycopg.connect(_database_url()) as other:
        other.execute(f"LOCK TABLE {table} IN SHARE MODE")
        yield
        other.rollback()


def publish(task, *args, broker_url: str) -> None:
    """Send a task to the fault suite's broker (the test process's own app points elsewhere)."""
    from celery.exceptions import AlwaysEagerIgnored

    from crm.celery import app

    with app.connection_for_write(broker_url) as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", AlwaysEagerIgnored)  # that is the point: send_task publishes even where tasks run eagerly
        app.send_task(task.name, args, connection=conn)


def kill_the_pool_process_while_blocked(processes, worker, table: str) -> None:
    wait_until(lambda: backend_waiting_on_lock(table), seconds=120, what=f"the worker's transaction to wait on {table}")
    os.kill(processes.pool_child(worker), signal.SIGKILL)


def segment_state() -> dict:
    """What a recompute decides, without the times and run ids that differ between runs."""
    metrics = MemberMetrics.objects.values_list(
        "member_id", "tier__code", "orders_365", "spend_365", "orders_total", "repeat_days", "risk_band", "trend", "usual_order_hour",
        "favourite_category_id",
    )
    return {
        "metrics": set(metrics),
        "p_alive": {m: round(p, 6) for m, p in MemberMetrics.objects.values_list("member_id", "p_alive") if p is not None},
        "circles": set(CircleMembership.objects.values_list("member_id", "circle__name")),
        "tier_changes": Counter(TierChange.objects.values_list("member_id", "from_tier__code", "to_tier__code", "reason")),
        "reviews": Counter(TierReview.objects.values_list("member_id", "to_tier__code", "status")),
        "group_moves": GroupMove.objects.count(),
    }


def test_a_worker_killed_in_the_nightly_recompute_ends_as_a_clean_run(processes, fault_broker):
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)  # the flushed ladder and circles
    call_command("seed_demo", members=1500, seed=11, as_of=FIRST, verbosity=0)
    tiers_recompute(as_of=FIRST)
    worker = processes.worker(pool="prefork", concurrency=1)

    with table_locked("segments_membermetrics"):
        publish(recompute_nightly_task, NIGHT.isoformat(), broker_url=fault_broker.url)
        kill_the_pool_process_while_blocked(processes, worker, "segments_membermetrics")
    wait_until(
        lambda: RecomputeRun.objects.filter(as_of=NIGHT, status=RunStatus.DONE).exists(), seconds=180,
        what="the redelivered nightly run to finish",
    )
    after_the_fault = segment_state()
    runs = Counter(RecomputeRun.objects.filter(as_of=NIGHT).values_list("status", flat=True))
    assert runs[RunStatus.DONE] == 1
    assert runs[RunStatus.RUNNING] == 0, "the killed run still shows as running"

    # The same two runs again from nothing, with no fault, in this process.
    for model in (GroupMove, TierReview, TierChange, CircleMembership, MemberMetrics, RecomputeRun, ChurnFit):
        model.objects.all().delete()
    tiers_recompute(as_of=FIRST)
    tiers_recompute_nightly(as_of=NIGHT)
    clean = segment_state()

    assert after_the_fault["tier_changes"], "the nightly run moved nobody: nothing was at stake"
    for part in clean:
        assert after_the_fault[part] == clean[part], part


def test_a_worker_killed_in_a_large_import_writes_it_exactly_once(processes, fault_broker, settings, admin_user):
    settings.MEDIA_ROOT = django_settings.DATA_DIR / "media"  # the worker reads the upload from there
    rows = 30_000
    body = "".join(f"K{n:06d},会员{n},139{n:08d},F\n" for n in range(rows))
    job = ImportJob(kind="members", original_name="big.csv", uploaded_by=admin_user)
    job.file.save("big.csv", ContentFile(f"external_id,name,mobile,gender\n{body}".encode()), save=False)
    job.save()
    worker = processes.worker(pool="prefork", concurrency=1)

    with table_locked("crm_member"):
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED, mode=ImportMode.ALL_OR_NOTHING)
        publish(import_job_task, job.pk, ImportMode.ALL_OR_NOTHING, broker_url=fault_broker.url)
        kill_the_pool_process_while_blocked(processes, worker, "crm_member")
        assert not Member.objects.exists()  # what the killed attempt wrote was never visible
    job = wait_until(
        lambda: (fresh := ImportJob.objects.get(pk=job.pk)).status in (ImportStatus.DONE, ImportStatus.FAILED) and fresh,
        seconds=180, what="the redelivered import to finish",
    )

    assert job.status == ImportStatus.DONE, job.message
    assert job.created_count == rows and job.updated_count == 0  # the killed attempt left nothing behind
    assert Member.objects.count() == rows
    assert Member.objects.values("external_id").distinct().count() == rows
    assert AuditEvent.objects.filter(action=AuditAction.IMPORT).count() == 1  # one committed import, audited once


def test_a_run_waiting_for_the_lock_is_not_taken_for_a_dead_one(fault_broker):  # fault_broker: PostgreSQL only
    """Holding the recompute's lock, only the runs taken up whose own lock nobody holds are closed as interrupted."""
    import threading

    from segments.services import LOCK_KEY, RUN_LOCK_CLASS, _interrupted_runs_close, run_lock_id
    from tests.conftest import _database_url

    waiter = psycopg.connect(_database_url(), autocommit=True)
    with django_transaction.atomic(), connection.cursor() as cursor:
        now = dt.datetime.now(dt.UTC)
        current = RecomputeRun.objects.create(as_of=FIRST, reason="order", claimed_at=now)
        waiting = RecomputeRun.objects.create(as_of=FIRST, reason="order", claimed_at=now)
        dead = RecomputeRun.objects.create(as_of=FIRST, reason="nightly", claimed_at=now)  # taken up, its worker gone
        not_started = RecomputeRun.objects.create(as_of=FIRST, reason="manual")  # queued for a worker: not taken up yet
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [RUN_LOCK_CLASS, run_lock_id(current.pk)])
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        # The waiting run's transaction: its own lock, then in the queue for the recompute's.
        queued = threading.Thread(
            target=waiter.execute,
            args=("SELECT pg_advisory_xact_lock(%s, %s), pg_advisory_xact_lock(%s)", [RUN_LOCK_CLASS, run_lock_id(waiting.pk), LOCK_KEY]),
        )
        queued.start()
        wait_until(lambda: backend_waiting_on_lock("pg_advisory_xact_lock"), seconds=30, what="the second session to wait for the lock")

        assert _interrupted_runs_close(cursor, current=current) == 1
        statuses = dict(RecomputeRun.objects.values_list("pk", "status"))
    assert statuses == {current.pk: RunStatus.RUNNING, waiting.pk: RunStatus.RUNNING, dead.pk: RunStatus.FAILED, not_started.pk: RunStatus.RUNNING}
