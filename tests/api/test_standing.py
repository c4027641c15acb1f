"""A member's points as he, the staff, his group leader and his messages see them after a
midnight, before the run that refreshes his stored balance: points past their expiry day
(1 January; the expiry run comes at 00:10) are gone, as a redemption already refuses them,
and points past their return window (the balances whose points became available are refreshed
at 00:05) are available, as DOMAIN.md says: an order dated D is available from D + 7."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from campaigns.rendering import contexts_for
from loyalty import services
from loyalty.models import Balance
from segments.services import tiers_recompute
from tests.campaigns.test_leader_phone import leader_user
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def member_on_new_years_eve():
    """300 points earned in 2024 (expiring at midnight) and 250 in 2025, settled on 31 December."""
    with time_machine.travel(at(2025, 12, 31, 23, 0), tick=False):
        wang, community = leader_user("wang", "幸福里1群")
        member = MemberFactory(external_id="M1", community=community)
        OrderFactory(member=member, ordered_at=at(2024, 6, 1, 9), amount=Decimal("300"))
        OrderFactory(member=member, ordered_at=at(2025, 6, 1, 9), amount=Decimal("250"))
        tiers_recompute()
        services.ledgers_settle()
    balance = Balance.objects.get(member=member)
    assert (balance.available, balance.expiring) == (550, 300)
    member.leader_user = wang
    return member


def test_after_midnight_the_expired_points_are_gone_before_the_expiry_run(call, client, admin_client, member_on_new_years_eve):
    member = member_on_new_years_eve
    with time_machine.travel(at(2026, 1, 1, 0, 5), tick=False):
        standing = call("GET", "/members/M1/standing").json()
        assert standing["points"] == {"available": 250, "pending": 0, "expiring_30d": 0}
        page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
        assert "<tr><th>points available</th><td>250</td></tr>" in page
        assert "<tr><th>points expiring within 30 days</th><td>0</td></tr>" in page
        client.force_login(member.leader_user)
        assert client.get(reverse("leader:member", args=[member.pk])).context["points"] == 250
        context = contexts_for([member.pk])[member.pk]  # a message's {points} and {points_expiring}
        assert (context["points"], context["points_expiring"]) == (250, 0)
        assert Balance.objects.get(member=member).available == 550  # the stored row waits for the run

        services.points_expire(now=at(2026, 1, 1, 0, 10))
    with time_machine.travel(at(2026, 1, 1, 0, 11), tick=False):
        assert call("GET", "/members/M1/standing").json()["points"] == {"available": 250, "pending": 0, "expiring_30d": 0}
        assert Balance.objects.get(member=member).available == 250


def test_before_midnight_the_points_about_to_expire_are_still_his(call, member_on_new_years_eve):
    with time_machine.travel(at(2025, 12, 31, 23, 59), tick=False):
        assert call("GET", "/members/M1/standing").json()["points"] == {"available": 550, "pending": 0, "expiring_30d": 300}


@pytest.fixture
def member_with_pending_points():
    """An order of 28 November (available from 5 December, the 7-day return window) and one of
    1 December (from 8 December), settled on 4 December; the run that refreshes his balance
    once the first becomes available comes at 00:05."""
    with time_machine.travel(at(2026, 12, 4, 22, 0), tick=False):
        wang, community = leader_user("wang", "幸福里1群")
        member = MemberFactory(external_id="M1", community=community)
        OrderFactory(member=member, ordered_at=at(2026, 6, 1, 9), amount=Decimal("100"))
        OrderFactory(member=member, ordered_at=at(2026, 11, 28, 20), amount=Decimal("120"))
        OrderFactory(member=member, ordered_at=at(2026, 12, 1, 9), amount=Decimal("30"))  # pending until 8 December
        tiers_recompute()
        services.ledgers_settle()
    balance = Balance.objects.get(member=member)
    assert (balance.available, balance.pending) == (100, 150)
    member.leader_user = wang
    return member


def test_after_midnight_points_past_their_return_window_are_available_before_the_run_that_refreshes_them(
        call, client, admin_client, member_with_pending_points, django_assert_num_queries):
    member = member_with_pending_points
    with time_machine.travel(at(2026, 12, 4, 23, 59), tick=False):
        assert call("GET", "/members/M1/standing").json()["points"] == {"available": 100, "pending": 150, "expiring_30d": 0}
    with time_machine.travel(at(2026, 12, 5, 1, 0), tick=False):
        assert call("GET", "/members/M1/standing").json()["points"] == {"available": 220, "pending": 30, "expiring_30d": 0}
        page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
        assert "<tr><th>points available</th><td>220</td></tr>" in page
        assert "<tr><th>points pending (return window)</th><td>30</td></tr>" in page
        client.force_login(member.leader_user)
        assert client.get(reverse("leader:member", args=[member.pk])).context["points"] == 220
        assert contexts_for([member.pk])[member.pk]["points"] == 220
        assert Balance.objects.get(member=member).pending == 150  # the stored row waits for its run
    with time_machine.travel(at(2026, 12, 5, 0, 5), tick=False):
        assert services.pending_release() == 1  # the beat's 00:05 run: only the balances whose time came
        stored = Balance.objects.get(member=member)
        assert (stored.available, stored.pending, stored.pending_until) == (220, 30, at(2026, 12, 8, 0, 0))
    with time_machine.travel(at(2026, 12, 5, 9, 0), tick=False):
        with django_assert_num_queries(1):  # one stored row again, no sum over the ledger
            assert services.balance_of(member).available == 220
        assert call("GET", "/members/M1/standing").json()["points"] == {"available": 220, "pending": 30, "expiring_30d": 0}
        assert services.pending_release() == 0
