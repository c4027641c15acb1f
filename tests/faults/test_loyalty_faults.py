"""The worker's pool process is killed (SIGKILL) in the middle of a nightly
settle of the ledgers, after the growth value entries are written and before
the points entries are: the task comes back by itself, and afterwards every
source holds what a clean run gives it, and every balance equals its ledgers.

As in test_work_faults: the test holds a lock on the points ledger, waits until
the worker's transaction is blocked on it, kills, and releases."""

from __future__ import annotations

import datetime as dt
import importlib
from collections import Counter

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from crm.models import Member, Order
from loyalty import services
from loyalty.balances import balances_differing
from loyalty.models import Balance, GrowthEntry, PointsEntry, SettleRun
from loyalty.tasks import ledgers_settle_nightly_task
from tests.conftest import wait_until
from tests.faults.test_work_faults import kill_the_pool_process_while_blocked, publish, table_locked

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

FIRST = dt.date(2026, 10, 1)


def ledger_state() -> dict:
    """What a settle decides, without the times and ids that differ between runs."""
    def sums(model) -> set:
        return set(model.objects.values("member_id", "rule", "source_kind", "source_id").annotate(total=Sum("amount"))
                   .values_list("member_id", "rule", "source_kind", "source_id", "total"))

    return {
        "growth": sums(GrowthEntry),
        "points": sums(PointsEntry),
        "balances": set(Balance.objects.values_list("member_id", "growth", "points")),
    }


def test_a_worker_killed_in_the_nightly_settle_ends_as_a_clean_run(processes, fault_broker):
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)  # the flushed ladder and circles
    importlib.import_module("loyalty.migrations.0002_defaults").create(apps, None)  # and the rights and earning rules
    call_command("seed_demo", members=1500, seed=11, as_of=FIRST, verbosity=0)
    services.ledgers_settle()
    # A day of orders arrives without its per-member tasks (as from a file whose tasks were lost): the night finds them.
    members = list(Member.objects.order_by("id").values_list("id", flat=True)[::10])
    Order.objects.bulk_create(
        Order(order_no=f"NIGHT-{m}", member_id=m, ordered_at=dt.datetime(2026, 10, 2, 9, tzinfo=dt.timezone.utc), amount=128)
        for m in members
    )
    worker = processes.worker(pool="prefork", concurrency=1)
    with table_locked("loyalty_pointsentry"):
        publish(ledgers_settle_nightly_task, broker_url=fault_broker.url)
        kill_the_pool_process_while_blocked(processes, worker, "loyalty_pointsentry")
    wait_until(lambda: SettleRun.objects.filter(scope="nightly", finished_at__isnull=False).exists(), seconds=180,
               what="the redelivered nightly settle to finish")
    after_the_fault = ledger_state()
    assert Counter(SettleRun.objects.values_list("scope", flat=True)) == {"all": 1, "nightly": 1}  # the killed run left nothing
    with connection.cursor() as cursor:
        assert balances_differing(cursor) == []
    night_orders = set(Order.objects.filter(order_no__startswith="NIGHT-").values_list("id", flat=True))
    assert len({r[3] for r in after_the_fault["points"] if r[2] == "order" and r[3] in night_orders}) == len(members)  # the night's work was done

    # The same from nothing, with no fault, in this process.
    for model in (GrowthEntry, PointsEntry, Balance, SettleRun):
        model.objects.all().delete()
    services.ledgers_settle()
    clean = ledger_state()
    for part in clean:
        assert after_the_fault[part] == clean[part], part
