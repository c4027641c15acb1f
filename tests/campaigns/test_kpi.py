"""Every dashboard figure equals an independent computation over the same raw
rows (the oracle below is plain Python over orders, tier changes, members,
deliveries and worklist items, written from the definitions in campaigns.dashboard.kpi)."""

import datetime as dt
import math
import random
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from campaigns.dashboard.kpi import end_of, snapshot_build
from campaigns.models import Campaign, Coupon, Delivery
from campaigns.dashboard.models import KpiSnapshot, SnapshotKind
from campaigns.worklist.models import WorklistItem
from crm.models import Member, Order
from segments.days import local_midnight
from segments.models import TierChange
from segments.services import tiers_recompute
from tests.campaigns.conftest import campaign_for, member_with
from tests.crm.factories import SHANGHAI, CommunityFactory, GroupLeaderFactory, OrderFactory

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)


@pytest.fixture
def shop():
    """80 members with a year and a half of random orders, placed 40 days ago and again today,
    in two leaders' communities; messages, a campaign with a redeemed coupon, worklist outcomes."""
    rng = random.Random(20261120)
    leaders = [GroupLeaderFactory(display_name=f"团长{n}") for n in range(2)]
    communities = [CommunityFactory(name=f"社区{n}", leader=leader) for n, leader in enumerate(leaders)]
    members = []
    with time_machine.travel(NOON - dt.timedelta(days=400), tick=False):
        for n in range(80):
            registered = NOON - dt.timedelta(days=rng.choice([rng.randint(0, 29), rng.randint(30, 500)]))
            members.append(member_with(True, community=communities[n % 2], registered_at=registered))
    for member in members:
        style = rng.random()
        count = 0 if style < 0.15 else rng.randint(1, 3) if style < 0.5 else rng.randint(4, 40)
        for _ in range(count):
            at = NOON - dt.timedelta(days=rng.uniform(0.1, 540))
            if at >= member.registered_at:
                OrderFactory(member=member, ordered_at=at, amount=Decimal(rng.randint(500, 90000)) / 100,
                             status="paid" if rng.random() > 0.1 else "refunded")
    # New buyers: a first order in the retention cohort window, half of them back within 7 days.
    for n, member in enumerate(members[:10]):
        Order.objects.filter(member=member).delete()
        first = NOON - dt.timedelta(days=rng.randint(8, 36))
        OrderFactory(member=member, ordered_at=first, amount=Decimal("30"))
        if n % 2:
            OrderFactory(member=member, ordered_at=first + dt.timedelta(days=rng.uniform(0.5, 6.5)), amount=Decimal("40"))
    for when in (NOON - dt.timedelta(days=40), NOON - dt.timedelta(hours=2)):
        with time_machine.travel(when, tick=False):
            tiers_recompute(as_of=when.date())
    members[-1].erased_at = NOON - dt.timedelta(days=1)
    members[-1].save()
    campaign = campaign_for(name="双十一")
    for member in members[20:50]:
        sent = NOON - dt.timedelta(days=rng.randint(1, 70))
        delivery = Delivery.objects.create(campaign=campaign, member=member, channel="sms", status="sent", due_at=sent, sent_at=sent)
        if rng.random() < 0.3:
            order = OrderFactory(member=member, ordered_at=sent + dt.timedelta(days=1), amount=Decimal("66"), coupon_code=f"Q{member.pk:09d}")
            Coupon.objects.create(code=f"Q{member.pk:09d}", member=member, campaign=campaign, delivery=delivery, kind="amount",
                                  value=Decimal("5"), valid_from=sent, valid_until=sent + dt.timedelta(days=7), redeemed_at=order.ordered_at, order=order)
    # Growth value and points from all of it; a redemption and an adjustment, and the 2024 points expired.
    from loyalty import services as loyalty
    from loyalty.models import Right

    OrderFactory(member=members[40], ordered_at=dt.datetime(2024, 12, 1, 10, tzinfo=SHANGHAI), amount=Decimal("120"))  # expired 2026-01-01
    with time_machine.travel(NOON - dt.timedelta(hours=1), tick=False):
        loyalty.ledgers_settle()
        loyalty.adjustment_create(member=members[30], ledger="points", amount=300, reason="客诉补偿")
        loyalty.points_redeem(member=members[30], right=Right.objects.get(name="免运费"), key="kpi")
        loyalty.points_expire()
    for n, member in enumerate(members[:12]):
        WorklistItem.objects.create(day=DAY - dt.timedelta(days=n), leader=member.community.leader, community=member.community, member=member,
                                    kind="birthday", priority=70, reason="r", script="s", outcome="contacted" if n % 3 == 0 else "")
    return {"members": members, "leaders": leaders, "campaign": campaign}


def tier_as_of(end: dt.datetime) -> dict[int, str]:
    latest: dict[int, TierChange] = {}
    for change in TierChange.objects.select_related("to_tier").order_by("at", "id"):
        if change.at < end:
            latest[change.member_id] = change
    erased = {m.pk for m in Member.objects.filter(erased_at__lt=end)}
    return {member_id: change.to_tier.code for member_id, change in latest.items() if member_id not in erased}


def oracle(day: dt.date) -> dict:
    """The figures of the definitions, computed plainly."""
    end = end_of(day)
    year, month = end - dt.timedelta(days=365), end - dt.timedelta(days=30)
    tiers = tier_as_of(end)
    paid = defaultdict(list)
    for order in Order.objects.filter(status="paid", ordered_at__lt=end):
        paid[order.member_id].append(order)
    members = {m.pk: m for m in Member.objects.filter(pk__in=tiers)}
    sent = list(Delivery.objects.filter(status="sent", sent_at__lt=end))
    segments = {"": list(tiers)}
    for member_id, code in tiers.items():
        segments.setdefault(code, []).append(member_id)
    marketing_total = sum(1 for d in sent if d.is_marketing and d.sent_at >= month and d.member_id in tiers)
    result = {}
    for key, ids in segments.items():
        spend = {i: sum((o.amount for o in paid[i] if o.ordered_at >= year), Decimal(0)) for i in ids}
        orders = {i: sum(1 for o in paid[i] if o.ordered_at >= year) for i in ids}
        gmv = sum(spend.values(), Decimal(0))
        top = sorted(ids, key=lambda i: (-spend[i], i))[: math.ceil(len(ids) * 0.05)]
        buyers = [i for i in ids if orders[i] >= 1]
        new = [i for i in ids if members[i].registered_at and month <= members[i].registered_at < end]
        cohort = [i for i in ids if paid[i] and end - dt.timedelta(days=37) <= min(o.ordered_at for o in paid[i]) < end - dt.timedelta(days=7)]
        kept = [i for i in cohort if any(
            first < o.ordered_at and o.ordered_at.astimezone(SHANGHAI).date() <= first.astimezone(SHANGHAI).date() + dt.timedelta(days=7)
            for first in [min(o.ordered_at for o in paid[i])] for o in paid[i])]
        contacted = {d.member_id for d in sent if d.sent_at >= end - dt.timedelta(days=60)}
        marketing = sum(1 for d in sent if d.is_marketing and d.sent_at >= month and d.member_id in ids)
        result[key] = {
            "members": len(ids),
            "gmv": float(gmv),
            "orders": sum(orders.values()),
            "top5_share": float(sum(spend[i] for i in top) / gmv) if gmv else None,
            "repurchase_rate": sum(1 for i in buyers if orders[i] >= 2) / len(buyers) if buyers else None,
            "aov": round(float(gmv) / sum(orders.values()), 2) if sum(orders.values()) else None,
            "avg_ltv": round(float(sum(o.amount for i in ids for o in paid[i])) / len(ids), 2) if ids else None,
            "monthly_orders": sum(orders.values()) / 12 / len(ids) if ids else None,
            "new_members": len(new),
            "first_order_conversion": sum(1 for i in new if paid[i]) / len(new) if new else None,
            "retention_cohort": len(cohort),
            "retention_7d": len(kept) / len(cohort) if cohort else None,
            "not_contacted_share": sum(1 for i in ids if i not in contacted) / len(ids) if ids else None,
            "marketing_messages": marketing,
            "marketing_share": marketing / marketing_total if marketing_total else None,
        }
    for key, figures in result.items():
        figures["gmv_share"] = figures["gmv"] / result[""]["gmv"] if result[""]["gmv"] else None
    # Points and growth value, from the ledger rows as they are.
    from loyalty.models import GrowthEntry, PointsEntry

    entries = [e for e in PointsEntry.objects.all() if e.occurred_at < end]
    growth = defaultdict(int)
    for entry in GrowthEntry.objects.all():
        if entry.occurred_at < end:
            growth[entry.member_id] += entry.amount
    for key, ids in segments.items():
        mine = [e for e in entries if e.member_id in set(ids)]
        in_year = [e for e in mine if e.occurred_at >= year]
        issued = sum(e.amount for e in in_year if e.rule == "order_points" or (e.rule == "adjustment" and e.amount > 0))
        redeemed = -sum(e.amount for e in in_year if e.rule == "redemption")
        spend = {i: float(sum((o.amount for o in paid[i] if o.ordered_at >= year), Decimal(0))) for i in ids}
        ranked = sorted(ids, key=lambda i: (-growth[i], i))
        top, rest = ranked[: math.ceil(len(ids) * 0.1)], ranked[math.ceil(len(ids) * 0.1):]
        top_spend = sum(spend[i] for i in top) / len(top) if top else None
        rest_spend = sum(spend[i] for i in rest) / len(rest) if rest else None
        result[key].update({
            "points_outstanding": sum(e.amount for e in mine),
            "points_liability": round(sum(e.amount for e in mine) * 0.01, 2),
            "points_issued": issued,
            "points_redeemed": redeemed,
            "points_expired": -sum(e.amount for e in in_year if e.rule == "expiry"),
            "redemption_rate": redeemed / issued if issued else None,
            "growth_top_spend": top_spend,
            "growth_rest_spend": rest_spend,
            "growth_spend_ratio": top_spend / rest_spend if top_spend is not None and rest_spend else None,
        })
    return result


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-9, abs=0.006)


def test_every_figure_equals_the_plain_computation(shop):
    with time_machine.travel(NOON, tick=False):
        snapshot_build(DAY)
    expected = oracle(DAY)
    stored = {row.key: row.figures for row in KpiSnapshot.objects.filter(day=DAY, kind__in=[SnapshotKind.BASE, SnapshotKind.TIER])}
    assert set(stored) == set(expected) and len(stored) >= 4
    for key, figures in expected.items():
        for name, value in figures.items():
            assert same(stored[key][name], value), (key or "base", name, stored[key][name], value)
    # Churn-risk bands (the day itself): the current metrics, counted per tier on D.
    from collections import Counter

    from segments.models import MemberMetrics

    tiers = tier_as_of(end_of(DAY))
    bands = dict(MemberMetrics.objects.values_list("member_id", "risk_band"))
    for key in expected:
        counted = Counter(bands.get(m) or "unknown" for m, code in tiers.items() if key in ("", code))
        assert stored[key]["risk"] == {band: counted.get(band, 0) for band in ("low", "medium", "high", "unknown")}, key
    kinds = {name for figures in expected.values() for name, value in figures.items() if value not in (None, 0)}
    assert {"retention_7d", "first_order_conversion", "marketing_share", "top5_share",
            "points_redeemed", "points_expired", "growth_spend_ratio"} <= kinds  # the data exercises them


def test_the_migration_matrix_leaders_and_campaign_roi(shop):
    with time_machine.travel(NOON, tick=False):
        snapshot_build(DAY)
    end = end_of(DAY)
    before, now = tier_as_of(end - dt.timedelta(days=30)), tier_as_of(end)
    matrix = defaultdict(lambda: defaultdict(int))
    for member_id in before.keys() & now.keys():
        matrix[before[member_id]][now[member_id]] += 1
    migration = KpiSnapshot.objects.get(day=DAY, kind=SnapshotKind.MIGRATION).figures
    assert migration["matrix"] == {k: dict(v) for k, v in matrix.items()}
    ranks = {"S": 4, "A": 3, "B": 2, "C": 1}
    both = len(before.keys() & now.keys())
    assert same(migration["upgrade_rate"], sum(1 for m in before.keys() & now.keys() if ranks[now[m]] > ranks[before[m]]) / both)

    for leader in shop["leaders"]:
        row = KpiSnapshot.objects.get(day=DAY, kind=SnapshotKind.LEADER, key=str(leader.pk)).figures
        ids = [m for m in now if Member.objects.get(pk=m).community.leader_id == leader.pk]
        active = {o.member_id for o in Order.objects.filter(status="paid", ordered_at__gte=end - dt.timedelta(days=30), ordered_at__lt=end)}
        items = WorklistItem.objects.filter(leader=leader, day__gt=DAY - dt.timedelta(days=30), day__lte=DAY)
        assert row["members"] == len(ids)
        assert same(row["active_share"], sum(1 for m in ids if m in active) / len(ids))
        assert same(row["follow_up_rate"], items.exclude(outcome="").count() / items.count())

    campaign = shop["campaign"]
    row = KpiSnapshot.objects.get(day=DAY, kind=SnapshotKind.CAMPAIGN, key=str(campaign.pk)).figures
    sent = Delivery.objects.filter(campaign=campaign, status="sent").count()
    coupons = Coupon.objects.filter(campaign=campaign, redeemed_at__isnull=False)
    cost = sent * 0.05 + 5 * coupons.count()
    # Last touch: paid orders after the message, dated at most N calendar days after its day, no other message in between.
    converted, revenue = 0, Decimal(0)
    for delivery in Delivery.objects.filter(campaign=campaign, status="sent"):
        window_end = local_midnight(delivery.sent_at.astimezone(SHANGHAI).date() + dt.timedelta(days=campaign.conversion_days + 1))
        others = [d.sent_at for d in Delivery.objects.filter(member=delivery.member, status="sent").exclude(pk=delivery.pk)]
        won = [
            o for o in Order.objects.filter(member=delivery.member, status="paid")
            if delivery.sent_at < o.ordered_at < window_end and not any(delivery.sent_at < t < o.ordered_at for t in others)
        ]
        converted += bool(won)
        revenue += sum((o.amount for o in won), Decimal(0))
    assert coupons.count() >= 3 and converted >= coupons.count()
    assert (row["sent"], row["converted"]) == (sent, converted)
    assert same(row["revenue"], float(revenue)) and same(row["cost"], cost) and same(row["roi"], (float(revenue) - cost) / cost)


def test_a_past_day_can_be_rebuilt_and_the_dashboard_reads_the_snapshots(shop, admin_client, django_assert_max_num_queries):
    with time_machine.travel(NOON, tick=False):
        for back in (20, 10, 0):
            snapshot_build(DAY - dt.timedelta(days=back))
        past = KpiSnapshot.objects.get(day=DAY - dt.timedelta(days=20), kind=SnapshotKind.BASE).figures
        assert past["members"] == oracle(DAY - dt.timedelta(days=20))[""]["members"]
        assert "risk" not in past  # churn bands exist for the day itself only
        with django_assert_max_num_queries(25):
            html = admin_client.get(reverse("admin:index")).content.decode()
    assert "dashboard-tiers" in html and html.count("<svg") >= 5 and "polyline" in html
    assert Campaign.objects.get(name="双十一").name in html


def test_a_past_days_campaign_figures_count_the_orders_placed_by_that_day_only():
    """A day rebuilt after the fact (history_rebuild) shows the campaign as it stood that day: the
    revenue of orders placed later in the window was not yet there."""
    member = member_with(True)
    campaign = campaign_for(name="复购提醒")
    sent = NOON - dt.timedelta(days=10)
    Delivery.objects.create(campaign=campaign, member=member, channel="sms", status="sent", due_at=sent, sent_at=sent)
    OrderFactory(member=member, ordered_at=sent + dt.timedelta(days=1), amount=Decimal("66"))
    OrderFactory(member=member, ordered_at=sent + dt.timedelta(days=5), amount=Decimal("34"))
    with time_machine.travel(NOON, tick=False):
        for back in (10, 8, 0):
            snapshot_build(DAY - dt.timedelta(days=back))

    def figures(back: int) -> tuple:
        row = KpiSnapshot.objects.get(day=DAY - dt.timedelta(days=back), kind=SnapshotKind.CAMPAIGN, key=str(campaign.pk)).figures
        return row["sent"], row["converted"], row["revenue"]

    assert figures(10) == (1, 0, 0)  # the day of the send, before the first order
    assert figures(8) == (1, 1, 66)
    assert figures(0) == (1, 1, 100)


def test_seven_day_retention_counts_calendar_days_from_the_first_orders_day():
    """First order at 09:00 on a day: back at 20:00 seven days later counts (the 7th calendar
    day), back just after midnight on the 8th does not."""
    first_day = DAY - dt.timedelta(days=20)
    at = lambda day, hour, minute=0: dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)  # noqa: E731
    kept, late = member_with(True), member_with(True)
    for member, again in ((kept, at(first_day + dt.timedelta(days=7), 20)), (late, at(first_day + dt.timedelta(days=8), 0, 5))):
        OrderFactory(member=member, ordered_at=at(first_day, 9), amount=Decimal("30"))
        OrderFactory(member=member, ordered_at=again, amount=Decimal("40"))
    with time_machine.travel(NOON, tick=False):
        tiers_recompute(as_of=DAY)
        snapshot_build(DAY)
    base = KpiSnapshot.objects.get(day=DAY, kind=SnapshotKind.BASE).figures
    assert (base["retention_cohort"], base["retention_7d"]) == (2, 0.5)


def test_a_campaign_with_a_control_group_shows_its_revenue_above_the_control_beside_the_attributed(admin_client, chinese):
    """Attributed revenue counts every converted order; the incremental revenue takes away what as
    many members of the control group bought in the same window. Without a control group it is —."""
    sent_at = NOON - dt.timedelta(days=10)
    tested = campaign_for(name="回归礼包")
    for amount in ("100", "50", None, None):
        member = member_with(True)
        Delivery.objects.create(campaign=tested, member=member, channel="sms", status="sent", due_at=sent_at, sent_at=sent_at)
        if amount:
            OrderFactory(member=member, ordered_at=sent_at + dt.timedelta(days=2), amount=Decimal(amount))
    for amount, days in (("30", 2), ("500", tested.conversion_days + 1)):  # the second order falls after the window
        member = member_with(True)
        Delivery.objects.create(campaign=tested, member=member, channel="sms", status="control", due_at=sent_at)
        OrderFactory(member=member, ordered_at=sent_at + dt.timedelta(days=days), amount=Decimal(amount))
    untested = campaign_for(name="新品试吃")
    member = member_with(True)
    Delivery.objects.create(campaign=untested, member=member, channel="sms", status="sent", due_at=sent_at, sent_at=sent_at)
    OrderFactory(member=member, ordered_at=sent_at + dt.timedelta(days=1), amount=Decimal("80"))
    with time_machine.travel(NOON, tick=False):
        snapshot_build(DAY)
        html = admin_client.get(reverse("admin:index")).content.decode()
    row = KpiSnapshot.objects.get(day=DAY, kind=SnapshotKind.CAMPAIGN, key=str(tested.pk)).figures
    assert (row["revenue"], row["incremental"]) == (150.0, 150.0 - 4 * 30 / 2)
    assert KpiSnapshot.objects.get(day=DAY, kind=SnapshotKind.CAMPAIGN, key=str(untested.pk)).figures["incremental"] is None
    assert "归因销售额" in html and "增量销售额" in html
    assert "<td>¥150.00</td><td>¥90.00</td>" in html and "<td>¥80.00</td><td>—</td>" in html


def test_a_campaign_whose_control_group_bought_more_shows_a_negative_incremental_revenue(admin_client, chinese):
    sent_at = NOON - dt.timedelta(days=10)
    campaign = campaign_for(name="清仓提醒")
    for status in ("sent", "sent", "control"):
        member = member_with(True)
        Delivery.objects.create(campaign=campaign, member=member, channel="sms", status=status, due_at=sent_at,
                                sent_at=sent_at if status == "sent" else None)
    OrderFactory(member=member, ordered_at=sent_at + dt.timedelta(days=1), amount=Decimal("40"))  # the control member
    with time_machine.travel(NOON, tick=False):
        snapshot_build(DAY)
        html = admin_client.get(reverse("admin:index")).content.decode()
    assert "<td>¥0.00</td><td>-¥80.00</td>" in html


def test_a_leader_sees_his_own_line_of_the_board_and_nothing_else(shop, client):
    from django.contrib.auth.models import Group

    from crm import roles

    with time_machine.travel(NOON, tick=False):
        snapshot_build(DAY)
    mine, other = shop["leaders"]
    mine.user.groups.add(Group.objects.get(name=roles.LEADER))
    client.force_login(mine.user)
    html = client.get(reverse("admin:index")).content.decode()
    assert "dashboard-leaders" in html and mine.display_name in html
    assert other.display_name not in html
    assert "dashboard-tiers" not in html and "双十一" not in html  # the base's figures are for those who see the whole base
    assert client.get(reverse("admin:campaigns_kpisnapshot_changelist")).context["cl"].result_count == 0


def test_the_home_page_shows_the_leaders_needing_attention_and_links_the_whole_board(shop, admin_client, monkeypatch):
    from campaigns.dashboard import home

    with time_machine.travel(NOON, tick=False):
        snapshot_build(DAY)
    monkeypatch.setattr(home, "HOME_LEADERS", 1)
    rows = {r.label: r.figures["active_share"] for r in KpiSnapshot.objects.filter(day=DAY, kind=SnapshotKind.LEADER)}
    lowest, highest = sorted(rows, key=rows.get)
    home = admin_client.get(reverse("admin:index")).content.decode()
    board = home[home.index('id="dashboard-leaders"'):]
    assert lowest in board and highest not in board
    assert reverse("admin:campaigns_kpisnapshot_leaders") in home
    full = admin_client.get(reverse("admin:campaigns_kpisnapshot_leaders")).content.decode()
    assert lowest in full and highest in full


def test_a_leaders_tier_mix_reads_down_the_ladder(admin_user):
    from campaigns.dashboard.home import leader_board

    KpiSnapshot.objects.create(day=DAY, kind=SnapshotKind.LEADER, key="1", label="张团长",
                               figures={"members": 500, "tier_mix": {"A": 33, "B": 215, "C": 248, "S": 4, "?": 1}})
    assert [row["tier_mix"] for row in leader_board(DAY, admin_user)] == ["S 4、A 33、B 215、C 248、? 1"]
