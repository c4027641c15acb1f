"""What staff do in the admin: write a template and preview it for a real
member, target a layer, read the dry run, submit, have someone else approve,
launch, and read the report."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from campaigns.models import Campaign, CampaignStatus, Delivery, MessageTemplate, Variant
from crm.models import AuditEvent, Consent
from segments.models import Tier
from segments.services import tiers_recompute
from tests.campaigns.conftest import NOW
from tests.crm.factories import MemberFactory, OrderFactory, OrderLineFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db
UPGRADE = "{{ salutation }}，您常买的{{ usual_product }}补货啦，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员"


@pytest.fixture
def auntie_zhang(frozen):
    """Seven orders of eggs worth ¥4,680 in the last two months: silver (B), ¥320 short of gold (A)."""
    member = MemberFactory(name="张桂兰", gender="F", age_band="55+", external_id="M-ZHANG")
    Consent.objects.create(member=member, channel="sms", granted=True)
    eggs, milk = ProductFactory(name="土鸡蛋"), ProductFactory(name="酸奶")
    for n in range(7):
        order = OrderFactory(member=member, amount=Decimal("668.57") if n else Decimal("668.58"), ordered_at=NOW - dt.timedelta(days=3 + n * 7))
        OrderLineFactory(order=order, product=eggs)
        if n == 0:
            OrderLineFactory(order=order, product=milk)
    tiers_recompute(as_of=NOW.date())
    return member


def operator(*perms: str, name: str = "op"):
    user = UserFactory(username=name)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["campaigns", "crm", "segments"], codename__in=perms))
    user.groups.add(Group.objects.get(name="B/C 运营 B/C operator"))
    return user


def test_the_preview_speaks_to_a_real_member(admin_client, auntie_zhang):
    template = MessageTemplate.objects.create(name="补货", body=UPGRADE)
    response = admin_client.get(reverse("admin:campaigns_messagetemplate_change", args=[template.pk]) + "?member=M-ZHANG")
    text = "张阿姨，您常买的土鸡蛋补货啦，再消费¥320即可升级黄金会员。拒收请回复R"
    assert text in response.content.decode()
    assert f"{len(text)} characters, 1 SMS" in response.content.decode()


def test_a_template_with_an_unknown_variable_is_not_saved(admin_client):
    response = admin_client.post(
        reverse("admin:campaigns_messagetemplate_add"),
        {"name": "坏模板", "channel": "sms", "purpose": "marketing", "subject": "", "body": "{{ salutation }}，{{ member.mobile }}"},
    )
    assert response.status_code == 200
    assert "unknown variable “member.mobile”" in response.content.decode()
    assert not MessageTemplate.objects.filter(name="坏模板").exists()


def test_saving_a_template_is_in_the_audit_log(admin_client):
    data = {"name": "补货", "channel": "sms", "purpose": "marketing", "subject": "", "body": "{{ salutation }}，补货啦"}
    admin_client.post(reverse("admin:campaigns_messagetemplate_add"), data)
    template = MessageTemplate.objects.get(name="补货")
    admin_client.post(reverse("admin:campaigns_messagetemplate_change", args=[template.pk]), {**data, "body": "{{ salutation }}，到货啦"})
    events = AuditEvent.objects.filter(action="campaign", object_id=str(template.pk)).order_by("at")
    assert [e.summary for e in events] == ["template created: 补货", "template changed: 补货"]
    assert events.last().detail["fields"] == ["body"]


def test_the_dry_run_page_shows_the_funnel_and_the_messages(admin_client, auntie_zhang):
    campaign = Campaign.objects.create(name="升级冲刺", status=CampaignStatus.DRAFT)
    campaign.target_tiers.set(Tier.objects.filter(code="B"))
    Variant.objects.create(campaign=campaign, template=MessageTemplate.objects.create(name="补货", body=UPGRADE))
    page = admin_client.get(reverse("admin:campaigns_campaign_funnel", args=[campaign.pk])).content.decode()
    assert 'data-step="to_send">1<' in page
    assert "张阿姨，您常买的土鸡蛋补货啦" in page
    assert not Delivery.objects.exists()


def approval_world(auntie_zhang, body=UPGRADE):
    author = operator(name="author")
    approver = operator("approve_campaign", name="approver")
    campaign = Campaign.objects.create(name="升级冲刺", created_by=author, control_share=0)
    campaign.target_tiers.set(Tier.objects.filter(code="B"))
    Variant.objects.create(campaign=campaign, template=MessageTemplate.objects.create(name="补货", body=body))
    return author, approver, campaign


def step(client, campaign, name):
    response = client.post(reverse("admin:campaigns_campaign_step", args=[campaign.pk, name]), follow=True)
    campaign.refresh_from_db()
    return response


def test_a_second_person_approves_then_the_launch_sends(client, auntie_zhang, outbox, django_capture_on_commit_callbacks):
    author, approver, campaign = approval_world(auntie_zhang)
    client.force_login(author)
    step(client, campaign, "submit")
    assert campaign.status == CampaignStatus.AWAITING
    assert step(client, campaign, "approve").status_code == 403  # the author is offered no approve button, and may not
    assert campaign.status == CampaignStatus.AWAITING
    client.force_login(approver)
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert 'form="campaign-step-approve"' in page
    step(client, campaign, "approve")
    assert (campaign.status, campaign.approved_by) == (CampaignStatus.SCHEDULED, approver)
    client.force_login(author)
    with django_capture_on_commit_callbacks(execute=True):
        response = step(client, campaign, "launch")
    assert "Launched: 1 messages in the outbox." in response.content.decode()
    assert [line["text"] for line in outbox()] == ["张阿姨，您常买的土鸡蛋补货啦，再消费¥320即可升级黄金会员。拒收请回复R"]
    member_page = client.get(reverse("admin:crm_member_change", args=[auntie_zhang.pk])).content.decode()
    assert "升级冲刺 · sent" in member_page
    actions = list(AuditEvent.objects.filter(action="campaign").values_list("summary", flat=True))
    assert actions == ["submitted 升级冲刺", "approved 升级冲刺", "launched 升级冲刺"]


def test_banned_words_stop_the_approval_and_are_named(client, auntie_zhang):
    author, approver, campaign = approval_world(auntie_zhang, body="{{ salutation }}，全城最低价，品质第一")
    client.force_login(author)
    response = step(client, campaign, "submit")
    assert campaign.status == CampaignStatus.DRAFT
    assert "the template contains banned words: 最、第一" in response.content.decode()


def test_a_campaign_out_of_draft_cannot_be_edited(admin_client, auntie_zhang):
    _author, _approver, campaign = approval_world(auntie_zhang)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SCHEDULED)
    page = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert 'name="name"' not in page
    assert admin_client.get(reverse("admin:campaigns_campaign_delete", args=[campaign.pk])).status_code == 403


def test_a_group_leader_sees_no_campaign(client, auntie_zhang):
    leader = UserFactory(username="leader")
    leader.groups.add(Group.objects.get(name="团长 group leader"))
    client.force_login(leader)
    assert client.get(reverse("admin:campaigns_campaign_changelist")).status_code == 403
    assert client.get(reverse("admin:campaigns_delivery_changelist")).status_code == 403


def test_a_repeating_campaign_gets_a_beat_entry_on_approval_and_loses_it_on_cancel(auntie_zhang):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from campaigns import services

    author, approver, campaign = approval_world(auntie_zhang)
    campaign.crontab = CrontabSchedule.objects.create(minute="0", hour="10", day_of_week="1", timezone="Asia/Shanghai")
    campaign.save()
    services.campaign_submit(campaign=campaign, user=author)
    services.campaign_approve(campaign=campaign, user=approver)
    task = PeriodicTask.objects.get(pk=campaign.periodic_task_id)
    assert (task.task, task.args, task.enabled) == ("campaigns.tasks.campaign_launch_task", f"[{campaign.pk}]", True)
    services.campaign_cancel(campaign=campaign, user=author)
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


def test_operators_see_and_target_only_their_own_tiers(client, auntie_zhang):
    sa, bc = UserFactory(username="sa"), UserFactory(username="bc")
    sa.groups.add(Group.objects.get(name="S/A 运营 S/A operator"))
    bc.groups.add(Group.objects.get(name="B/C 运营 B/C operator"))
    gold = Campaign.objects.create(name="黄金专享", created_by=UserFactory(username="hq"))
    gold.target_tiers.set(Tier.objects.filter(code="A"))
    silver = Campaign.objects.create(name="白银冲刺", created_by=UserFactory(username="hq2"))
    silver.target_tiers.set(Tier.objects.filter(code="B"))
    client.force_login(sa)
    listing = client.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    assert "黄金专享" in listing and "白银冲刺" not in listing
    assert client.get(reverse("admin:campaigns_campaign_funnel", args=[silver.pk])).status_code == 404
    client.force_login(bc)
    form = client.get(reverse("admin:campaigns_campaign_add")).context["adminform"].form
    assert sorted(t.code for t in form.fields["target_tiers"].queryset) == ["B", "C"]
    response = client.post(reverse("admin:campaigns_campaign_add"), {
        "name": "全员", "channel": "sms", "purpose": "marketing", "control_share": 0, "coupon_days": 7, "conversion_days": 7,
        "variants-TOTAL_FORMS": 0, "variants-INITIAL_FORMS": 0, "variants-MIN_NUM_FORMS": 1, "variants-MAX_NUM_FORMS": 1000,
    })
    assert "Choose at least one of the tiers you operate." in response.content.decode()
    assert not Campaign.objects.filter(name="全员").exists()
