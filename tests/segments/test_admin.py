"""Tiers, circles, reviews and the member's standing in the admin."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from segments.models import Circle, Tier, TierReview
from segments.services import tiers_recompute
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db


def buy(member, amounts, days_ago=1):
    for n, amount in enumerate(amounts):
        when = dt.datetime.now(tz=SHANGHAI) - dt.timedelta(days=days_ago, hours=n)
        OrderFactory(member=member, amount=Decimal(amount), ordered_at=when)


def tier_post_data(tier: Tier, **changes) -> dict:
    data = {
        "code": tier.code, "name": tier.name, "rank": tier.rank, "is_catch_all": "on" if tier.is_catch_all else "",
        "max_recency_days": tier.max_recency_days or "", "orders_comparison": tier.orders_comparison,
        "orders_365": "" if tier.orders_365 is None else tier.orders_365, "spend_comparison": tier.spend_comparison,
        "spend_365": "" if tier.spend_365 is None else tier.spend_365, "community": "", "playbook": tier.playbook,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != "" or key not in ("is_catch_all",)}


def test_the_tier_preview_counts_who_would_move_before_saving(admin_client):
    members = [MemberFactory() for _ in range(3)]
    buy(members[0], ["800"] * 7)  # 7 orders, ¥5,600: gold
    buy(members[1], ["400"] * 7)  # ¥2,800: silver
    tiers_recompute()
    gold = Tier.objects.get(code="A")
    url = reverse("admin:segments_tier_preview", args=[gold.pk])
    response = admin_client.post(url, tier_post_data(gold, spend_365="2000"))
    assert response.status_code == 200
    payload = response.json()
    assert payload["moved"] == 1
    assert payload["moves"] == [{"from": "B 白银", "to": "A 黄金", "members": 1}]
    # Nothing was saved by the preview.
    gold.refresh_from_db()
    assert gold.spend_365 == Decimal("5000.00")


def test_a_second_catch_all_tier_is_refused_with_a_message(admin_client):
    response = admin_client.post(
        reverse("admin:segments_tier_add"),
        {"code": "D", "name": "观察", "rank": 5, "is_catch_all": "on", "orders_comparison": "gt", "spend_comparison": "gte"},
    )
    assert response.status_code == 200
    assert "Exactly one tier must be the catch-all." in response.content.decode()
    assert not Tier.objects.filter(code="D").exists()


def test_a_circle_shows_its_live_count_and_saves_its_rules(admin_client):
    big, small = MemberFactory(), MemberFactory()
    buy(big, ["3000", "3000"])
    buy(small, ["50"])
    tiers_recompute()
    form = {"name": "大单会员", "kind": "circle", "active": "on", "description": "", "rule_spend_365_min": "5000"}
    preview = admin_client.post(reverse("admin:segments_circle_preview"), form).json()
    assert preview == {"members": 1, "share": 50.0, "estimated": False}
    response = admin_client.post(reverse("admin:segments_circle_add"), form)
    assert response.status_code == 302
    circle = Circle.objects.get(name="大单会员")
    assert circle.rules == {"spend_365_min": "5000"}
    assert list(circle.memberships.values_list("member", flat=True)) == [big.pk]
    page = admin_client.get(reverse("admin:segments_circle_change", args=[circle.pk])).content.decode()
    assert 'name="rule_spend_365_min"' in page and 'value="5000"' in page


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the sample is PostgreSQL's TABLESAMPLE")
def test_on_a_large_base_the_circle_preview_is_an_estimate_from_a_sample_and_says_so(admin_client, settings, chinese):
    MemberFactory.create_batch(3000)
    for member in MemberFactory.create_batch(1000):
        buy(member, ["3000", "3000"])
    tiers_recompute()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE segments_membermetrics")
    form = {"name": "大单会员", "kind": "circle", "active": "on", "description": "", "rule_spend_365_min": "5000"}
    settings.SEGMENTS_PREVIEW_EXACT_UP_TO = 10_000
    assert admin_client.post(reverse("admin:segments_circle_preview"), form).json()["members"] == 1000  # a small base: exact

    settings.SEGMENTS_PREVIEW_EXACT_UP_TO = 100
    settings.SEGMENTS_PREVIEW_SAMPLE_ROWS = 100_000  # the whole table: the estimate is the count
    whole = admin_client.post(reverse("admin:segments_circle_preview"), form).json()
    assert (whole["members"], whole["share"], whole["estimated"]) == (1000, 25.0, True)
    settings.SEGMENTS_PREVIEW_SAMPLE_ROWS = 2000  # half the pages
    half = admin_client.post(reverse("admin:segments_circle_preview"), form).json()
    assert half["estimated"] and 600 <= half["members"] <= 1400 and "抽样" in half["note"]
    assert admin_client.post(reverse("admin:segments_circle_preview"), form).json() == half  # the same sample each time


def test_a_bad_circle_rule_is_explained_next_to_its_field(admin_client):
    form = {"name": "坏规则", "kind": "circle", "active": "on", "rule_orders_365_min": "很多"}
    response = admin_client.post(reverse("admin:segments_circle_add"), form)
    assert response.status_code == 200
    assert "Enter a number." in response.content.decode()
    assert not Circle.objects.filter(name="坏规则").exists()
    preview = admin_client.post(reverse("admin:segments_circle_preview"), form)
    assert preview.status_code == 400 and "rule_orders_365_min" in preview.json()["errors"]


def test_the_member_page_shows_tier_gap_circles_and_history(admin_client, chinese):
    member = MemberFactory()
    buy(member, ["780"] * 6)  # 6 orders, ¥4,680: silver, ¥320 and one order short of gold
    tiers_recompute()
    html = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    assert "B 白银" in html
    assert "再消费¥320.00 / 再买1次，即可升级黄金" in html
    assert "潜力成长" in html or "低频购买" in html
    assert "crm-timeline" in html
    listing = admin_client.get(reverse("admin:crm_member_changelist"), {"tier": Tier.objects.get(code="B").pk}).content.decode()
    assert member.external_id in listing


def test_reviews_are_approved_from_the_queue(admin_client):
    member = MemberFactory()
    buy(member, ["200"] * 8, days_ago=3)
    tiers_recompute()
    buy(member, ["30000", "200", "200", "200", "200"], days_ago=0)
    tiers_recompute(member_ids=[member.pk])
    review = TierReview.objects.get(member=member)
    listing = admin_client.get(reverse("admin:segments_tierreview_changelist")).content.decode()
    assert member.external_id in listing and "30000" in listing.replace(",", "")
    admin_client.post(
        reverse("admin:segments_tierreview_changelist"),
        {"action": "approve", "_selected_action": [review.pk]},
    )
    review.refresh_from_db()
    assert review.status == "approved"
    assert member.metrics.__class__.objects.get(member=member).tier.code == "S"


def test_the_member_page_shows_his_paid_orders_and_spend_month_by_month(admin_client, chinese):
    """F and M per calendar month (DOMAIN.md section 2): the twelve months ending with this one,
    Beijing-time months, refunds left out; the month before them is not shown."""
    import re

    from segments.services import member_standing

    member = MemberFactory()
    today = dt.datetime.now(tz=SHANGHAI).date()
    this_month = today.replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    oldest = this_month
    for _ in range(11):
        oldest = (oldest - dt.timedelta(days=1)).replace(day=1)

    def order(day: dt.date, amount: str, *, at=dt.time(0, 0, 30), status="paid") -> None:
        OrderFactory(member=member, amount=Decimal(amount), ordered_at=dt.datetime.combine(day, at, tzinfo=SHANGHAI), status=status)

    order(this_month, "100")
    order(this_month, "50", status="refunded")
    order(last_month + dt.timedelta(days=14), "200")
    order(last_month + dt.timedelta(days=20), "300.50")
    order(oldest, "40")  # the first half-minute of the oldest month shown
    order(oldest - dt.timedelta(days=1), "999", at=dt.time(23, 59, 59))  # the month before: not shown
    tiers_recompute()

    months = member_standing(member, as_of=today)["months"]
    assert [first for first, _orders, _spend in months][0] == oldest and months[-1][0] == this_month and len(months) == 12
    assert months[-1][1:] == (1, Decimal("100")) and months[-2][1:] == (2, Decimal("500.50")) and months[0][1:] == (1, Decimal("40"))
    assert sum(orders for _first, orders, _spend in months) == 4

    html = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    table = re.search(r'<table class="crm-months".*?</table>', html, re.S).group(0)
    assert f"{oldest:%Y-%m} 至 {this_month:%Y-%m}" in table and f">{this_month.month}月</th>" in table
    assert 'title="¥500.50">500<' in table and 'title="¥100.00">100<' in table and "999" not in table
