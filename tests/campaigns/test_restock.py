"""Restock and offer reminders: from a product's admin page, a draft campaign to
the members who bought it lately, sent through the usual approval and outbox."""

import datetime as dt

import pytest
from django.urls import reverse

from campaigns import audience, services
from campaigns.models import Campaign, CampaignStatus
from tests.campaigns.conftest import NOW, member_with
from tests.crm.factories import OrderFactory, OrderLineFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyers(frozen):
    eggs, rice = ProductFactory(name="土鸡蛋30枚"), ProductFactory(name="东北大米10kg")
    recent, long_ago, other, refunded = (member_with(True, name=name, gender="F", age_band="45-54") for name in ("王芳", "李娜", "赵敏", "钱红"))
    for member, product, days, status in ((recent, eggs, 10, "paid"), (long_ago, eggs, 200, "paid"), (other, rice, 5, "paid"), (refunded, eggs, 3, "refunded")):
        OrderLineFactory(order=OrderFactory(member=member, ordered_at=NOW - dt.timedelta(days=days), status=status), product=product)
    return {"eggs": eggs, "recent": recent, "long_ago": long_ago, "other": other, "refunded": refunded}


def test_notify_past_buyers_reaches_who_bought_the_product_lately(admin_client, buyers, outbox, django_capture_on_commit_callbacks):
    response = admin_client.post(
        reverse("admin:crm_product_changelist"), {"action": "notify_past_buyers", "_selected_action": [buyers["eggs"].pk]}
    )
    campaign = Campaign.objects.get(target_product=buyers["eggs"])
    assert response.status_code == 302 and response["Location"] == reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    assert campaign.status == CampaignStatus.DRAFT and campaign.target_product_days == 90
    assert list(audience.audience(campaign).values_list("pk", flat=True)) == [buyers["recent"].pk]

    dry_run = admin_client.get(reverse("admin:campaigns_campaign_funnel", args=[campaign.pk])).content.decode()
    assert "王姐，您上次买的土鸡蛋30枚补货啦" in dry_run

    approver = UserFactory(username="hq", is_superuser=True)
    services.campaign_submit(campaign=campaign, user=campaign.created_by)
    services.campaign_approve(campaign=campaign, user=approver)
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    [line] = outbox("sms")
    assert line["member"] == buyers["recent"].pk
    assert line["text"].startswith("王姐，您上次买的土鸡蛋30枚补货啦")


def test_notify_past_buyers_wants_exactly_one_product(admin_client, buyers):
    second = ProductFactory(name="酸奶")
    response = admin_client.post(
        reverse("admin:crm_product_changelist"),
        {"action": "notify_past_buyers", "_selected_action": [buyers["eggs"].pk, second.pk]},
        follow=True,
    )
    assert "Choose exactly one product." in response.content.decode()
    assert not Campaign.objects.filter(target_product__isnull=False).exists()


def test_bought_within_90_days_is_the_90_calendar_days_ending_today(buyers):
    """The window rule of DOMAIN.md: today and the 89 days before, whatever the hour of the order."""
    from django.utils import timezone

    from crm.models import OrderStatus
    from segments.days import local_midnight

    today = timezone.localdate(NOW)
    first_day, day_before = local_midnight(today - dt.timedelta(days=89)), local_midnight(today - dt.timedelta(days=89)) - dt.timedelta(seconds=1)
    edge, outside = member_with(True, name="孙丽"), member_with(True, name="周红")
    OrderLineFactory(order=OrderFactory(member=edge, ordered_at=first_day, status=OrderStatus.PAID), product=buyers["eggs"])
    OrderLineFactory(order=OrderFactory(member=outside, ordered_at=day_before, status=OrderStatus.PAID), product=buyers["eggs"])
    campaign = Campaign.objects.create(name="补货", target_product=buyers["eggs"], target_product_days=90)
    assert set(audience.audience(campaign).values_list("pk", flat=True)) == {buyers["recent"].pk, edge.pk}
