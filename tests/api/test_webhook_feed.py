"""What the shop is pushed: every new coupon and tier change once, even when the
rows commit in another order than their ids (crm.feeds); a rebuilt history is
not news."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from api import webhooks
from api.keys import client_create
from api.models import WebhookEvent
from campaigns.rewards import coupon_issue
from segments.models import ChangeReason, Tier, TierChange
from tests.crm.factories import MemberFactory


def pushed(kind: str) -> list[dict]:
    return [event.payload for event in WebhookEvent.objects.filter(kind=kind).order_by("id")]


@pytest.mark.django_db(transaction=True)
def test_a_coupon_committed_after_a_later_one_is_still_pushed():
    """A campaign's batch inserts its coupons and commits a moment later; meanwhile a points
    redemption's coupon (a higher id) commits. The collector must not move past the first."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    client_create(name="小程序", scopes=["standing"], webhook_url="http://127.0.0.1:9/hooks")
    early, late = MemberFactory(external_id="EARLY"), MemberFactory(external_id="LATE")
    inserted, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def slow_batch() -> None:
        try:
            with transaction.atomic():
                coupon_issue(member=early, value=Decimal("10"), threshold=None, days=7, now=timezone.now())
                inserted.set()
                assert release.wait(60)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
        finally:
            inserted.set()
            connection.close()

    writer = threading.Thread(target=slow_batch)
    writer.start()
    try:
        assert inserted.wait(60)
        coupon_issue(member=late, value=Decimal("5"), threshold=None, days=7, now=timezone.now())  # committed, a higher id
        assert webhooks.collect() == 0  # a writer is between its insert and its commit: nothing read yet
    finally:
        release.set()
        writer.join(60)
    assert failures == []
    assert webhooks.collect() == 2
    assert sorted(payload["external_id"] for payload in pushed("coupon.issued")) == ["EARLY", "LATE"]
    assert webhooks.collect() == 0  # each once


@pytest.mark.django_db
def test_a_rebuilt_tier_history_is_not_pushed_a_live_move_is():
    client_create(name="小程序", scopes=["standing"], webhook_url="http://127.0.0.1:9/hooks")
    member = MemberFactory(external_id="M1")
    bronze, silver = Tier.objects.get(code="C"), Tier.objects.get(code="B")
    TierChange.objects.create(member=member, from_tier=None, to_tier=bronze, reason=ChangeReason.REBUILD, at=timezone.now() - dt.timedelta(days=300))
    TierChange.objects.create(member=member, from_tier=bronze, to_tier=silver, reason=ChangeReason.ORDER, at=timezone.now())
    assert webhooks.collect() == 1
    assert [(p["external_id"], p["from"], p["to"], p["reason"]) for p in pushed("member.tier_changed")] == [("M1", "C", "B", "order")]
