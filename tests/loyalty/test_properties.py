"""Any interleaving of orders, refunds, re-imports, orders moved to the other
member, corrected amounts, dates and event counts, events, retried settles (of
both members or of one), redemptions, time passing and expiry runs leaves every
balance equal to its ledgers, no source awarded more than once, growth value
and points equal to what a plain reading of DOMAIN.md section 8 gives for the
orders and events as they stand (the oracles below), held at each source's
business time as it stands."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, example, given, settings, strategies as st

from crm.models import EngagementEvent, Order, OrderStatus
from loyalty import services
from loyalty.balances import balances_differing
from loyalty.models import Balance, GrowthEntry, PointsEntry, Right
from loyalty.services import RedemptionError
from segments.days import local_midnight
from tests.crm.factories import SHANGHAI, MemberFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 1, 9, tzinfo=SHANGHAI)

operation = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 1), st.integers(0, 200), st.integers(0, 900)),
    st.tuples(st.just("refund"), st.integers(0, 9)),
    st.tuples(st.just("repay"), st.integers(0, 9)),
    st.tuples(st.just("reimport"), st.integers(0, 9)),
    st.tuples(st.just("move"), st.integers(0, 9)),
    st.tuples(st.just("amend"), st.integers(0, 9), st.integers(0, 900)),  # an amount corrected
    st.tuples(st.just("redate"), st.integers(0, 9), st.integers(0, 400)),  # an order's date corrected
    st.tuples(st.just("recount"), st.integers(0, 9), st.integers(1, 4)),  # an event's count corrected
    st.tuples(st.just("event"), st.integers(0, 1), st.sampled_from(["share", "ugc", "invite"]), st.integers(1, 3)),
    st.tuples(st.just("settle"), st.sampled_from(["members", "all", "nightly", "twice", "first", "second"])),
    st.tuples(st.just("redeem"), st.integers(0, 1), st.integers(0, 3)),
    st.tuples(st.just("advance"), st.sampled_from([90, 300, 500])),  # days pass, maybe past an expiry day
    st.tuples(st.just("expire"),),
)


def oracle_growth(member) -> int:
    paid = list(Order.objects.filter(member=member, status=OrderStatus.PAID).order_by("ordered_at", "id"))
    events = EngagementEvent.objects.filter(member=member)
    return (
        10
        + (50 + 100 * (len(paid) - 1) if paid else 0)
        + sum(e.count * {"share": 30, "ugc": 200}.get(e.kind, 0) for e in events)
    )


def oracle_expired(member, now: dt.datetime) -> int:
    """Points expired by now, by a plain first-in-first-out walk: every paid order as it stands is a
    lot expiring on 1 January two years after its local year; each redemption, in time order,
    takes from the lots that have not expired yet, oldest first; on each expiry day that has
    come, what is left of the lots expiring then is gone."""
    remaining: dict[dt.datetime, int] = defaultdict(int)
    for order in Order.objects.filter(member=member, status=OrderStatus.PAID):
        remaining[local_midnight(dt.date(order.ordered_at.astimezone(SHANGHAI).year + 2, 1, 1))] += int(order.amount)
    spends = sorted(PointsEntry.objects.filter(member=member, rule="redemption").values_list("occurred_at", "amount"))
    expired = 0
    for cutoff in sorted(c for c in remaining if c <= now):
        while spends and spends[0][0] < cutoff:
            owed = -spends.pop(0)[1]
            for expiry in sorted(remaining):
                taken = min(owed, remaining[expiry])
                remaining[expiry] -= taken
                owed -= taken
        expired += remaining[cutoff]
        remaining[cutoff] = 0
    return expired


def expected_growth_sources(members) -> dict:
    expected = {}
    for member in members:
        expected["register", "registration", member.pk] = 10
        paid = Order.objects.filter(member=member, status=OrderStatus.PAID).order_by("ordered_at", "id")
        for rank, order in enumerate(paid):
            rule, amount = ("first_order", 50) if rank == 0 else ("repeat_order", 100)
            expected[rule, "order", order.pk] = amount
        for event in EngagementEvent.objects.filter(member=member, kind__in=["share", "ugc"]):
            expected[event.kind, "event", event.pk] = event.count * {"share": 30, "ugc": 200}[event.kind]
    return expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(operation, min_size=1, max_size=14))
@example(steps=[("order", 0, 0, 100), ("settle", "all"), ("redate", 0, 30), ("refund", 0), ("settle", "first")])
@example(steps=[("order", 0, 0, 300), ("settle", "all"), ("advance", 90), ("redeem", 0, 0), ("advance", 500), ("advance", 300),
                ("expire",), ("refund", 0)])
# A settled lot whose expiry day comes with no expiry run (its beat late): the next settle expires it.
@example(steps=[("order", 0, 0, 1), ("settle", "members"), ("advance", 500), ("advance", 300)])
def test_balances_always_equal_their_ledgers_whatever_the_interleaving(steps):
    with time_machine.travel(START + dt.timedelta(days=1)) as clock, transaction.atomic():
        members = [MemberFactory(), MemberFactory()]
        orders: list[Order] = []
        events: list[EngagementEvent] = []
        redeemable = list(Right.objects.filter(points_cost__isnull=False, tier__code="C"))
        for n, step in enumerate(steps):
            kind = step[0]
            if kind == "order":
                _kind, who, day, amount = step
                orders.append(Order.objects.create(
                    order_no=f"P{n}", member=members[who], ordered_at=START + dt.timedelta(days=day), amount=Decimal(amount) + Decimal("0.99")))
            elif kind in ("refund", "repay", "reimport") and orders:
                order = orders[step[1] % len(orders)]
                if kind != "reimport":
                    order.status = OrderStatus.REFUNDED if kind == "refund" else OrderStatus.PAID
                order.save()
            elif kind == "move" and orders:
                order = orders[step[1] % len(orders)]
                order.member = members[1] if order.member_id == members[0].pk else members[0]
                order.save()
            elif kind == "amend" and orders:
                order = orders[step[1] % len(orders)]
                order.amount = Decimal(step[2]) + Decimal("0.49")
                order.save()
            elif kind == "redate" and orders:
                order = orders[step[1] % len(orders)]
                order.ordered_at = START + dt.timedelta(days=step[2], minutes=n)
                order.save()
            elif kind == "event":
                _kind, who, event_kind, count = step
                events.append(EngagementEvent.objects.create(
                    member=members[who], kind=event_kind, occurred_at=START + dt.timedelta(hours=n), count=count))
            elif kind == "recount" and events:
                event = events[step[1] % len(events)]
                event.count = step[2]
                event.save()
            elif kind == "settle":
                how = step[1]
                if how == "all":
                    services.ledgers_settle()
                elif how == "nightly":
                    services.ledgers_settle_nightly()
                elif how in ("first", "second"):  # one member's task, the other's lost or in another batch
                    services.ledgers_settle(member_ids=[members[how == "second"].pk])
                else:
                    for _ in range(2 if how == "twice" else 1):
                        services.ledgers_settle(member_ids=[m.pk for m in members])
            elif kind == "redeem":
                _kind, who, key = step
                try:
                    services.points_redeem(member=members[who], right=redeemable[key % len(redeemable)], key=f"{who}-{key}")
                except RedemptionError:
                    pass
            elif kind == "advance":
                clock.shift(dt.timedelta(days=step[1]))
            elif kind == "expire":
                services.points_expire()
        services.ledgers_settle(member_ids=[m.pk for m in members])

        with connection.cursor() as cursor:
            assert balances_differing(cursor) == []
        for member in members:
            balance = Balance.objects.get(member=member)
            assert balance.growth == oracle_growth(member)
            spent = -(PointsEntry.objects.filter(member=member, rule="redemption").aggregate(s=Sum("amount"))["s"] or 0)
            earned = sum(int(o.amount) for o in Order.objects.filter(member=member, status=OrderStatus.PAID))
            assert balance.points == earned - spent - oracle_expired(member, dt.datetime.now(tz=SHANGHAI))
        # Each source holds exactly what it earns as things stand: never twice, never a leftover.
        held = defaultdict(int)
        for rule, kind, source, amount in GrowthEntry.objects.filter(member__in=members).values_list("rule", "source_kind", "source_id", "amount"):
            held[rule, kind, source] += amount
        assert {key: total for key, total in held.items() if total} == expected_growth_sources(members)
        # ... and at the order's date as it stands: a sum "as of day D" follows the order.
        for entries in (GrowthEntry.objects, PointsEntry.objects):
            at_times = defaultdict(int)
            for source, occurred_at, amount in entries.filter(source_kind="order").values_list("source_id", "occurred_at", "amount"):
                at_times[source, occurred_at] += amount
            held_at = {source: occurred_at for (source, occurred_at), total in at_times.items() if total}
            assert held_at == {o.pk: o.ordered_at for o in orders if o.pk in held_at}
        transaction.set_rollback(True)
