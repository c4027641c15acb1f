"""A campaign from approval to its report, in Chinese, as staff click through it."""

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, MessageTemplate, Variant
from crm.models import Consent
from segments.models import Tier
from segments.services import tiers_recompute
from tests.crm.factories import MemberFactory, OrderFactory, OrderLineFactory, ProductFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def awaiting_campaign(settings, tmp_path):
    # A transactional test starts from an emptied database: put the shipped defaults back.
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
    importlib.import_module("campaigns.migrations.0002_defaults").create(apps, None)
    settings.CAMPAIGN_BACKENDS = {"sms": {"BACKEND": "campaigns.backends.FileBackend", "OPTIONS": {"directory": str(tmp_path)}}}
    from campaigns.models import SendingPolicy

    SendingPolicy.objects.update(quiet_start=dt.time(0), quiet_end=dt.time(0), usual_hour=False)
    member = MemberFactory(name="张桂兰", gender="F", age_band="55+")
    Consent.objects.create(member=member, channel="sms", granted=True)
    eggs = ProductFactory(name="土鸡蛋")
    for n in range(3):
        OrderLineFactory(order=OrderFactory(member=member, amount=Decimal("400"), ordered_at=timezone.now() - dt.timedelta(days=n + 1)), product=eggs)
    tiers_recompute()
    campaign = Campaign.objects.create(name="白银升级冲刺", status=CampaignStatus.AWAITING, created_by=UserFactory(username="author"))
    campaign.target_tiers.set(Tier.objects.filter(code="B"))
    body = "{{ salutation }}，您常买的{{ usual_product }}补货啦，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员"
    Variant.objects.create(campaign=campaign, template=MessageTemplate.objects.create(name="补货", body=body))
    return campaign, tmp_path / "sms.jsonl"


def test_approve_dry_run_send_and_read_the_report(staff_login, live_server, awaiting_campaign):
    campaign, sink = awaiting_campaign
    page = staff_login
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click("button:has-text('审批通过')")
    assert "已审批，等待发送。" in page.locator(".messagelist").inner_text()

    page.click("a:has-text('试运行')")
    assert page.locator("[data-step=to_send]").inner_text() == "1"
    assert "张阿姨，您常买的土鸡蛋补货啦，再消费¥3800即可升级黄金会员" in page.locator(".crm-funnel").inner_text()

    page.click("a:has-text('返回活动')")
    page.click("button:has-text('立即发送')")
    assert "已启动：1 条消息进入发送队列。" in page.locator(".messagelist").inner_text()
    assert "张阿姨，您常买的土鸡蛋补货啦" in sink.read_text()

    page.click("a:has-text('报告')")
    row = page.locator("tr[data-variant=A]").inner_text()
    assert row.split("\t")[1:3] == ["1", "1"]  # members, sent
