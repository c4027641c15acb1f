"""Expiry kept true when a lot changes after its expiry day (DOMAIN.md section 8).

Points earned in year Y expire at the end of Y + 1, spent from the oldest lots
first. A refund that comes after its points expired takes back points that no
longer exist: the expiry is given back before the reversal takes them, so the
member is not charged twice. An order imported after its points' expiry day
(history loaded into a running system) expires at once, not never."""

import csv
import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from crm.models import OrderStatus
from loyalty import services
from loyalty.balances import balances_differing
from loyalty.models import Balance, PointsEntry, Right
from segments.services import tiers_recompute
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def points(member) -> int:
    return Balance.objects.get(member=member).points


def expired(member) -> int:
    return -sum(PointsEntry.objects.filter(member=member, rule="expiry").values_list("amount", flat=True))


def assert_ledgers_agree():
    with connection.cursor() as cursor:
        assert balances_differing(cursor) == []


def refund(order) -> None:
    order.refresh_from_db()
    order.status = OrderStatus.REFUNDED
    order.save()


def test_a_refund_after_the_points_expired_takes_them_once(admin_client):
    with time_machine.travel(at(2024, 6, 2, 10), tick=False) as clock:
        member = MemberFactory()
        order = OrderFactory(member=member, ordered_at=at(2024, 6, 1, 9), amount=Decimal("100"))
        services.ledgers_settle()
        clock.move_to(at(2026, 1, 1, 0, 10))
        services.points_expire()
        assert (points(member), expired(member)) == (0, 100)

        clock.move_to(at(2026, 3, 1, 10))
        refund(order)  # a late refund of a 2024 order
        services.ledgers_settle(member_ids=[member.pk])
        # The order never earned: nothing of it expired, and the member owes nothing.
        assert (points(member), expired(member)) == (0, 0)
        assert_ledgers_agree()
        page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
        assert "+100 <span class='crm-muted'>expiry given back</span>" in page  # not a second "expiry"
        entries = PointsEntry.objects.count()
        services.ledgers_settle()
        services.ledgers_settle_nightly()
        assert PointsEntry.objects.count() == entries  # settled once


def test_a_refund_after_expiry_gives_back_only_what_had_expired_of_a_spent_lot():
    with time_machine.travel(at(2024, 6, 2, 10), tick=False) as clock:
        member = MemberFactory()
        old = OrderFactory(member=member, ordered_at=at(2024, 6, 1, 9), amount=Decimal("300"))
        OrderFactory(member=member, ordered_at=at(2025, 6, 1, 9), amount=Decimal("400"))
        clock.move_to(at(2025, 7, 1, 10))
        services.ledgers_settle()
        free_shipping = Right.objects.get(name="免运费")  # 200 points, a C right
        services.points_redeem(member=member, right=free_shipping, key="r-2025")  # from the 2024 lot
        clock.move_to(at(2026, 1, 1, 0, 10))
        services.points_expire()
        assert (points(member), expired(member)) == (400, 100)  # 300 - 200 of 2024 expire

        clock.move_to(at(2026, 2, 1, 10))
        services.points_redeem(member=member, right=free_shipping, key="r-2026")  # from the 2025 lot
        services.ledgers_settle(member_ids=[member.pk])
        assert (points(member), expired(member)) == (200, 100)  # spending after the expiry day gives nothing back

        clock.move_to(at(2026, 3, 1, 10))
        refund(old)
        services.ledgers_settle(member_ids=[member.pk])
        # Without the 2024 order both redemptions came from the 2025 lot, and nothing expired.
        assert (points(member), expired(member)) == (0, 0)
        assert_ledgers_agree()


def test_an_order_imported_after_its_points_expiry_day_expires_at_once(tmp_path):
    with time_machine.travel(at(2026, 3, 1, 0, 30), tick=False):
        services.points_expire()  # the beat ran on an empty base
        member = MemberFactory(external_id="M-LATE")
        OrderFactory(member=member, ordered_at=at(2024, 5, 1, 9), amount=Decimal("120"))  # history loaded later
        OrderFactory(member=member, ordered_at=at(2025, 5, 1, 9), amount=Decimal("80"))
        services.ledgers_settle(member_ids=[member.pk])
        assert (points(member), expired(member)) == (80, 120)
        entry = PointsEntry.objects.get(member=member, rule="expiry")
        assert entry.occurred_at == at(2026, 1, 1, 0, 0)  # on its expiry day, not today
        assert services.points_expire() == 0
        assert_ledgers_agree()
        tiers_recompute()  # the export lists the members with metrics

        def available(day: str) -> str:
            path = tmp_path / f"{day}.csv"
            call_command("export_member_metrics", "--as-of", day, str(path))
            return next(row for row in csv.DictReader(path.open(encoding="utf-8")) if row["external_id"] == "M-LATE")["points_available"]

        assert (available("2025-12-31"), available("2026-01-01")) == ("200", "80")


def test_points_past_their_expiry_day_cannot_be_spent_before_the_expiry_run():
    """From midnight on 1 January until the beat's expiry run, the balance still holds the old
    year's points; a redemption in that gap must not spend them (the run would then leave the
    member negative)."""
    with time_machine.travel(at(2025, 7, 1, 10), tick=False) as clock:
        member = MemberFactory()
        OrderFactory(member=member, ordered_at=at(2024, 6, 1, 9), amount=Decimal("300"))  # expires 2026-01-01
        OrderFactory(member=member, ordered_at=at(2025, 6, 1, 9), amount=Decimal("300"))  # expires 2027-01-01
        services.ledgers_settle()
        free_shipping = Right.objects.get(name="免运费")  # 200 points

        clock.move_to(at(2026, 1, 1, 0, 5))  # the expiry run comes at 00:10
        services.points_redeem(member=member, right=free_shipping, key="night-1")  # from the 2025 lot
        with pytest.raises(services.RedemptionError, match="100 available, 200 needed. 300 points reached their expiry day"):
            services.points_redeem(member=member, right=free_shipping, key="night-2")
        assert PointsEntry.objects.filter(member=member, rule="redemption").count() == 1

        clock.move_to(at(2026, 1, 1, 0, 10))
        services.points_expire()
        assert (points(member), expired(member)) == (100, 300)
        assert_ledgers_agree()
