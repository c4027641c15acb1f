"""The nightly housekeeping: the runs of single orders' recomputes and settles go
once old; nightly and full runs, runs a tier change points to and the ledgers
stay, and the next night still starts where the last one ended."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from loyalty import services as loyalty
from loyalty.models import Balance, SettleRun
from segments.models import ChangeReason, RecomputeRun, TierChange
from segments.services import tiers_recompute, tiers_recompute_nightly
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def housekeeping(*options) -> str:
    from io import StringIO

    out = StringIO()
    call_command("housekeeping", *options, stdout=out)
    return out.getvalue()


def test_old_runs_of_single_orders_go_and_what_the_night_and_history_need_stays():
    quiet = MemberFactory(registered_at=at(2026, 1, 1, 9))
    climber = MemberFactory(registered_at=at(2026, 1, 1, 9))
    for day in (1, 2):
        OrderFactory(member=climber, ordered_at=at(2026, 11, day, 9), amount=Decimal("600"))
    OrderFactory(member=quiet, ordered_at=at(2026, 11, 3, 9), amount=Decimal("50"))
    with time_machine.travel(NOW, tick=False):
        full = tiers_recompute()
        loyalty.ledgers_settle()
        unchanged = tiers_recompute(member_ids=[quiet.pk], reason=ChangeReason.ORDER)
        OrderFactory(member=climber, ordered_at=at(2026, 11, 19, 9), amount=Decimal("600"))  # a third order: 白银
        promoted = tiers_recompute(member_ids=[climber.pk], reason=ChangeReason.ORDER)
        settled = loyalty.ledgers_settle(member_ids=[climber.pk])
    assert TierChange.objects.get(member=climber, run=promoted).to_tier.code == "B"

    with time_machine.travel(NOW + dt.timedelta(days=89), tick=False):
        assert "deleted 0 rows" in housekeeping()  # not yet 90 days old
    with time_machine.travel(NOW + dt.timedelta(days=91), tick=False):
        report = housekeeping()
    assert "recompute runs of single orders, imports and members (kept 90 days): deleted 1" in report
    assert "ledger runs of single orders and imports (kept 90 days): deleted 1" in report
    assert set(RecomputeRun.objects.values_list("pk", flat=True)) == {full.pk, promoted.pk}
    assert not RecomputeRun.objects.filter(pk=unchanged.pk).exists()
    assert not SettleRun.objects.filter(pk=settled.pk).exists() and SettleRun.objects.filter(scope="all").count() == 1

    # The next night starts from the runs that stayed: a later order is recomputed and settled.
    with time_machine.travel(NOW + dt.timedelta(days=92), tick=False):
        growth = Balance.objects.get(member=quiet).growth
        OrderFactory(member=quiet, ordered_at=at(2027, 2, 19, 9), amount=Decimal("80"))
        night = tiers_recompute_nightly()
        loyalty.ledgers_settle_nightly()
    assert night.members >= 1 and Balance.objects.get(member=quiet).growth == growth + 100


def test_a_dry_run_counts_and_deletes_nothing_and_expired_sessions_go():
    with time_machine.travel(NOW, tick=False):
        loyalty.ledgers_settle(member_ids=[MemberFactory().pk])
        expired = SessionStore()
        expired.set_expiry(60)
        expired.create()
        live = SessionStore()
        live.set_expiry(3600 * 24 * 200)
        live.create()
    with time_machine.travel(NOW + dt.timedelta(days=100), tick=False):
        report = housekeeping("--dry-run")
        assert "ledger runs of single orders and imports (kept 90 days): would delete 1" in report
        assert "expired staff sessions (kept 0 days): would delete 1" in report
        assert SettleRun.objects.count() == 1 and Session.objects.count() == 2
        housekeeping()
    assert not SettleRun.objects.exists()
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


def test_an_imports_bad_rows_go_after_ninety_days_and_its_page_says_so(admin_client, admin_user):
    from tests.crm.test_admin_imports import BAD, upload

    job, location = upload(admin_client, BAD)
    admin_client.post(location, {"action": "valid_only"})
    start = timezone.now()
    with time_machine.travel(start + dt.timedelta(days=89)):
        housekeeping()
        admin_client.force_login(admin_user)
        assert "12345" in admin_client.get(location).content.decode()
    with time_machine.travel(start + dt.timedelta(days=91)):
        assert "rows with errors of finished imports (kept 90 days): deleted 2" in housekeeping()
        admin_client.force_login(admin_user)
        page = admin_client.get(location).content.decode()
    assert "12345" not in page and "were deleted 90 days after the import" in page
    job.refresh_from_db()
    assert (job.total_rows, job.valid_rows, job.error_rows) == (3, 1, 2)  # the counts stay


def test_the_beat_runs_it_every_night():
    task = PeriodicTask.objects.get(task="crm.tasks.housekeeping_task")
    assert task.enabled and (task.crontab.hour, task.crontab.minute) == ("4", "40")
