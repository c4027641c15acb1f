"""The demo's campaign sent three weeks ago: a newcomer's first report has results, read from the
orders as for any campaign, and seeding it again changes nothing. The demo's redemptions: the
points programme has been used, within what each member's balance allowed. The demo's invites
have been rewarded on their days since the programme began."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from campaigns.demo import HISTORY_DAYS_AGO, INVITE_DAYS, REDEMPTION_DAYS, seed_demo_campaign_history, seed_demo_invite_rewards, seed_demo_redemptions
from campaigns.invites.models import InviteReward
from campaigns.models import CampaignStatus, Coupon, Delivery, DeliveryStatus
from campaigns.reports import campaign_report
from crm.models import EngagementEvent, Order
from loyalty.balances import balances_differing
from loyalty.models import Balance, PointsEntry, Redemption, RuleCode
from loyalty.services import ledgers_settle
from segments.services import tiers_recompute
from tests.campaigns.conftest import NOW, member_with
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_the_demo_has_a_campaign_sent_three_weeks_ago_with_its_results(frozen, outbox):
    sent_day = (NOW - dt.timedelta(days=HISTORY_DAYS_AGO)).date()
    members = []
    for n in range(40):
        member = member_with(True, name=f"会员{n}")
        hour = 21 if n % 3 == 0 else 11  # a third usually order in the quiet hours: their message waits for the morning
        for back in (50, 35, 23):
            OrderFactory(member=member, amount=Decimal("400"), ordered_at=dt.datetime.combine(sent_day - dt.timedelta(days=back), dt.time(hour), tzinfo=SHANGHAI))
        if n % 2:
            OrderFactory(member=member, amount=Decimal("88"), ordered_at=dt.datetime.combine(sent_day + dt.timedelta(days=3), dt.time(hour), tzinfo=SHANGHAI))
        members.append(member)
    tiers_recompute(as_of=NOW.date())

    campaign = seed_demo_campaign_history(now=NOW)
    assert campaign.status == CampaignStatus.DONE
    deliveries = Delivery.objects.filter(campaign=campaign)
    assert deliveries.count() == 40 and not deliveries.filter(status=DeliveryStatus.QUEUED).exists()
    start = dt.datetime.combine(sent_day, dt.time(10), tzinfo=SHANGHAI)
    for sent_at in deliveries.filter(status=DeliveryStatus.SENT).values_list("sent_at", flat=True):
        local = sent_at.astimezone(SHANGHAI)
        assert start <= sent_at < start + dt.timedelta(days=2) and 8 <= local.hour < 20  # never in the quiet hours
    report = campaign_report(campaign)
    totals = report["totals"]
    assert totals["sent"] == len(outbox()) > 0 and totals["sent"] + totals["held_back"] == 40
    # Converted: the members sent a message who ordered within the 7 days after it, by hand.
    by_hand = {
        d.member_id for d in deliveries.filter(status=DeliveryStatus.SENT)
        if Order.objects.filter(member_id=d.member_id, status="paid", ordered_at__gt=d.sent_at, ordered_at__lte=d.sent_at + dt.timedelta(days=7)).exists()
    }
    assert totals["converted"] == len(by_hand) > 0
    coupons = Coupon.objects.filter(campaign=campaign)
    assert coupons.count() == totals["sent"]
    for coupon in coupons.filter(redeemed_at__isnull=False).select_related("order"):
        assert coupon.order.member_id == coupon.member_id and coupon.valid_from <= coupon.order.ordered_at <= coupon.valid_until
        assert coupon.order.coupon_code == coupon.code
    assert report["coupons"]["redeemed"] == coupons.filter(redeemed_at__isnull=False).count()

    assert seed_demo_campaign_history(now=NOW) is None
    assert Delivery.objects.filter(campaign=campaign).count() == 40 and len(outbox()) == totals["sent"]


def test_the_demo_has_points_spent_on_rights_within_each_balance(frozen):
    rich, poor = [], []
    for n in range(60):
        member = MemberFactory(external_id=f"R{n}")
        OrderFactory(member=member, amount=Decimal("700"), ordered_at=NOW - dt.timedelta(days=200 - n))
        rich.append(member.pk)
    for n in range(10):  # 150 points: less than any right costs
        member = MemberFactory(external_id=f"P{n}")
        OrderFactory(member=member, amount=Decimal("150"), ordered_at=NOW - dt.timedelta(days=190))
        poor.append(member.pk)
    ledgers_settle(now=NOW)

    made = seed_demo_redemptions(now=NOW)
    redemptions = Redemption.objects.all()
    assert made == redemptions.count() > 0
    assert set(redemptions.values_list("member_id", flat=True)) <= set(rich)
    assert len(set(redemptions.values_list("member_id", flat=True))) < len(rich)  # some members, not all
    for redemption in redemptions:
        assert NOW - dt.timedelta(days=REDEMPTION_DAYS) <= redemption.created_at <= NOW
    # Every member's points: 700 earned, less what he spent, never below zero; the balances are
    # as of now, and equal their ledgers.
    spent = {member_id: 0 for member_id in rich}
    for member_id, points in redemptions.values_list("member_id", "points"):
        spent[member_id] += points
    for balance in Balance.objects.filter(member_id__in=rich):
        assert balance.available == 700 - spent[balance.member_id] >= 0 and balance.computed_at == NOW
    assert -sum(PointsEntry.objects.filter(rule=RuleCode.REDEMPTION).values_list("amount", flat=True)) == sum(spent.values())
    with connection.cursor() as cursor:
        assert balances_differing(cursor) == []
    # A coupon right gave its member a coupon from the moment he redeemed.
    for redemption in redemptions.exclude(coupon_id=None):
        coupon = Coupon.objects.get(pk=redemption.coupon_id)
        assert coupon.member_id == redemption.member_id and coupon.valid_from == redemption.created_at

    assert seed_demo_redemptions(now=NOW) == 0 and Redemption.objects.count() == made


def test_the_demo_invites_were_rewarded_on_their_days(frozen):
    for n, days_ago in enumerate([INVITE_DAYS + 5, 40, 40, 12, 3]):
        member = MemberFactory(external_id=f"I{n}")
        EngagementEvent.objects.create(member=member, kind="invite", occurred_at=NOW - dt.timedelta(days=days_ago), count=1 + n % 3)
    assert seed_demo_invite_rewards(now=NOW) == InviteReward.objects.count() == 5  # I0 invited before the programme began
    for reward in InviteReward.objects.select_related("coupon"):
        # Given the evening of the invite's day, not all at once today.
        assert reward.coupon.valid_from.date() == reward.reached_at.date() and reward.coupon.valid_from >= reward.reached_at
    assert not InviteReward.objects.filter(member__external_id="I0").exists()
    assert seed_demo_invite_rewards(now=NOW) == 0 and InviteReward.objects.count() == 5
