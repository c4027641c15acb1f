"""The outbox: the funnel equals what a launch writes, one message per member
whatever is retried, and consent, opt-out, cap and quiet hours checked again
when the message goes."""

import datetime as dt
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from django.db import transaction

from campaigns import audience, sending, services
from campaigns.models import CampaignStatus, Delivery, DeliveryStatus, SkipReason
from crm.models import Consent
from segments.services import tiers_recompute
from tests.campaigns.conftest import NOW, campaign_for, member_with, statuses
from tests.crm.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_members(frozen):
    """Members of tier C, each left out for a different reason, or not."""
    members = {
        "ok": [member_with(True) for _ in range(4)],
        "never_asked": [member_with(None)],
        "withdrawn": [member_with(False)],
        "opted_out": [member_with(True, personalisation_opt_out=True)],
        "no_mobile": [member_with(True, mobile="")],
        "capped": [member_with(True)],
        "erased": [member_with(True, erased_at=NOW)],
    }
    earlier = campaign_for(name="earlier")
    for n in range(3):
        other = campaign_for(name=f"earlier-{n}")
        Delivery.objects.create(
            campaign=other, member=members["capped"][0], channel="sms", status=DeliveryStatus.SENT,
            due_at=NOW - dt.timedelta(days=n + 1), sent_at=NOW - dt.timedelta(days=n + 1),
        )
    earlier.delete()
    tiers_recompute(as_of=NOW.date())
    return members


def test_the_dry_run_funnel_counts_what_a_launch_writes(mixed_members, outbox, django_capture_on_commit_callbacks):
    campaign = campaign_for()
    funnel = audience.funnel(campaign)
    removed = {step["reason"]: step["removed"] for step in funnel["steps"]}
    assert funnel["audience"] == 9  # the erased member is never in an audience
    assert removed == {"opted_out": 1, "no_contact": 1, "no_consent": 2, "cap": 1}
    assert funnel["to_send"] == 4 and not Delivery.objects.filter(campaign=campaign).exists()

    with django_capture_on_commit_callbacks(execute=True):
        created = services.campaign_launch(campaign=campaign)
    assert created == 9
    rows = statuses(campaign)
    assert Counter(reason for status, reason in rows.values() if status == "skipped") == {
        "opted_out": 1, "no_contact": 1, "no_consent": 2, "cap": 1,
    }
    assert rows[mixed_members["capped"][0].pk] == ("skipped", "cap")
    sent_to = sorted(line["to"] for line in outbox())
    assert sent_to == sorted(m.mobile for m in mixed_members["ok"])
    assert all(line["text"].endswith("拒收请回复R") for line in outbox())


def test_launching_twice_and_running_the_fan_out_twice_sends_one_message_per_member(mixed_members, outbox, django_capture_on_commit_callbacks):
    campaign = campaign_for()
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
        assert services.campaign_launch(campaign=campaign) == 0
    ids = list(Delivery.objects.filter(campaign=campaign).values_list("pk", flat=True))
    sending.send_batch(ids)  # a redelivered task: every row is already taken
    Delivery.objects.filter(campaign=campaign).update(enqueued_at=None)
    sending.dispatch(now=NOW + dt.timedelta(hours=1))  # a sweep hands nothing out twice
    assert Delivery.objects.filter(campaign=campaign).count() == 9
    per_member = Counter(line["member"] for line in outbox())
    assert sorted(per_member.values()) == [1, 1, 1, 1]


def test_a_worker_stalled_past_the_sweep_does_not_send_rows_another_worker_took(mixed_members, outbox, monkeypatch):
    """A worker held up between reading its batch and claiming it (a rate
    wait, a slow database) for longer than the sweep's threshold: the sweeper
    hands its rows to a second worker, which sends them. The first worker must
    then send nothing, or those members get the message twice."""
    campaign = campaign_for()
    audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
    ids = sorted(Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).values_list("pk", flat=True))
    later = NOW + dt.timedelta(minutes=services.SendingPolicy.current().stale_minutes + 1)
    real_rate_wait = sending.rate_wait
    handed: list[list[int]] = []

    def stalled(*args):
        monkeypatch.setattr(sending, "rate_wait", real_rate_wait)
        sending.dispatch(now=later, enqueue=handed.append)  # the sweeper re-queues the stalled worker's rows
        for batch in handed:
            sending.send_batch(batch, now=later)  # ...and a second worker sends them

    monkeypatch.setattr(sending, "rate_wait", stalled)
    sending.send_batch(ids, now=NOW)

    per_member = Counter(line["member"] for line in outbox())
    assert sorted(per_member.values()) == [1, 1, 1, 1]
    assert Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENT).count() == 4


def test_deleting_a_campaign_or_a_member_takes_their_outbox_rows_along(mixed_members, outbox, django_capture_on_commit_callbacks):
    """The outbox has no foreign key constraints in the database (campaigns.models):
    a campaign or member deleted through the application still leaves no row behind."""
    from campaigns.models import Coupon, CouponKind

    campaign = campaign_for(coupon_kind=CouponKind.AMOUNT, coupon_value=10, coupon_days=7)
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    assert Coupon.objects.filter(campaign=campaign).count() == 4  # one for each member sent
    gone = mixed_members["ok"][0]
    gone.delete()
    assert not Delivery.objects.filter(member_id=gone.pk).exists()
    assert not Coupon.objects.filter(member_id=gone.pk).exists()
    kept = Delivery.objects.filter(campaign=campaign).count()
    assert kept == 8
    campaign.delete()
    assert not Delivery.objects.filter(campaign_id=campaign.pk).exists()
    # A coupon outlives its campaign (a member may still redeem it), detached from the deleted rows.
    left = Coupon.objects.filter(member_id__in=[m.pk for m in mixed_members["ok"][1:]])
    assert left.count() == 3
    assert set(left.values_list("campaign_id", "delivery_id")) == {(None, None)}


def test_members_of_an_excluded_circle_or_tier_are_left_out_of_the_audience(frozen):
    from segments.models import Circle, CircleMembership, Tier

    kept, in_circle, in_tier, in_both = (member_with(True) for _ in range(4))
    tiers_recompute(as_of=NOW.date())
    recent = Circle.objects.create(name="刚下过单", rules={"recency_max": 3})
    CircleMembership.objects.bulk_create(CircleMembership(circle=recent, member=m, since=NOW) for m in (in_circle, in_both))
    campaign = campaign_for(tiers=("C", "B"))
    campaign.exclude_circles.set([recent])
    assert set(audience.audience(campaign).values_list("pk", flat=True)) == {kept.pk, in_tier.pk}

    from segments.models import MemberMetrics

    MemberMetrics.objects.filter(member__in=[in_tier, in_both]).update(tier=Tier.objects.get(code="B"))
    campaign.exclude_tiers.set(Tier.objects.filter(code="B"))
    assert set(audience.audience(campaign).values_list("pk", flat=True)) == {kept.pk}
    assert audience.funnel(campaign)["audience"] == 1


def test_a_new_member_of_the_audience_is_reached_by_the_next_launch_only(mixed_members, outbox, django_capture_on_commit_callbacks):
    campaign = campaign_for()
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    newcomer = member_with(True)
    tiers_recompute(member_ids=[newcomer.pk], as_of=NOW.date())
    assert audience.funnel(campaign)["to_send"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.campaign_launch(campaign=campaign) == 1
    assert [line["member"] for line in outbox()].count(newcomer.pk) == 1


def test_consent_withdrawn_after_launch_stops_the_message(frozen, outbox):
    member = member_with(True)
    tiers_recompute(as_of=NOW.date())
    campaign = campaign_for()
    audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
    Consent.objects.filter(member=member).update(granted=False)
    sending.dispatch()
    assert statuses(campaign)[member.pk] == ("skipped", SkipReason.NO_CONSENT)
    assert outbox() == []


def test_a_launch_hands_each_due_message_to_the_workers_once_and_keeps_the_later_ones(frozen, outbox, monkeypatch, django_capture_on_commit_callbacks):
    """The launch marks and hands out what is due now itself; a message for the
    morning (launched in quiet hours) waits unhanded for the dispatch that finds it due."""
    now_member, later_member = member_with(True), member_with(True)
    tiers_recompute(as_of=NOW.date())
    service = campaign_for(purpose="service")  # service messages ignore quiet hours
    marketing = campaign_for()
    handed: list[list[int]] = []
    monkeypatch.setattr(sending, "_enqueue", lambda ids: handed.append(ids))
    evening = NOW.replace(hour=21)
    frozen.move_to(evening)
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=service)
        services.campaign_launch(campaign=marketing)
    rows = {(d.campaign_id, d.member_id): d for d in Delivery.objects.all()}
    due_now = sorted(rows[(service.pk, m.pk)].pk for m in (now_member, later_member))
    assert sorted(pk for ids in handed for pk in ids) == due_now  # each once, nothing of the morning's
    morning = rows[(marketing.pk, now_member.pk)]
    assert morning.due_at == NOW.replace(hour=8) + dt.timedelta(days=1) and morning.enqueued_at is None
    frozen.move_to(morning.due_at)
    sending.dispatch()
    # The morning's messages now, and the evening's again: this test's queue dropped their tasks, and the sweep makes up for it.
    assert sorted(handed[-1]) == sorted([*due_now, *(rows[(marketing.pk, m.pk)].pk for m in (now_member, later_member))])


def test_in_quiet_hours_a_message_waits_for_the_morning(frozen, outbox):
    member = member_with(True)
    tiers_recompute(as_of=NOW.date())
    campaign = campaign_for()
    audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
    frozen.move_to(NOW.replace(hour=21))
    sending.dispatch()
    delivery = Delivery.objects.get(campaign=campaign, member=member)
    assert delivery.status == DeliveryStatus.QUEUED and outbox() == []
    assert delivery.due_at == NOW.replace(hour=8) + dt.timedelta(days=1)
    frozen.move_to(delivery.due_at)
    sending.dispatch()
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENT
    assert len(outbox()) == 1


def test_a_member_with_a_usual_hour_is_sent_then(frozen, outbox):
    from segments.models import MemberMetrics

    member = member_with(True)
    tiers_recompute(as_of=NOW.date())
    MemberMetrics.objects.filter(member=member).update(usual_order_hour=18)
    campaign = campaign_for()
    audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
    assert Delivery.objects.get(member=member).due_at == NOW.replace(hour=18)
    sending.dispatch()
    assert outbox() == []


def test_service_messages_skip_consent_and_cap_but_not_contact(frozen, outbox, django_capture_on_commit_callbacks):
    member_with(None)
    member_with(None, mobile="")
    tiers_recompute(as_of=NOW.date())
    campaign = campaign_for(purpose="service", body="{{ salutation }}，您的订单已发货")
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    assert Counter(status for status, _r in statuses(campaign).values()) == {"sent": 1, "skipped": 1}
    assert not outbox()[0]["text"].endswith("拒收请回复R")


def test_the_control_group_and_the_variants_split_at_random(frozen):
    from campaigns.models import MessageTemplate, Variant
    from crm.models import Member

    Member.objects.bulk_create(Member(external_id=f"B{n:05d}", name=f"赵{n}", mobile=f"139{n:08d}") for n in range(4000))
    Consent.objects.bulk_create(Consent(member=m, channel="sms", granted=True) for m in Member.objects.all())
    tiers_recompute(as_of=NOW.date())
    campaign = campaign_for(control_share=20)
    Variant.objects.filter(campaign=campaign).update(share=50)
    Variant.objects.create(campaign=campaign, label="B", template=MessageTemplate.objects.first(), share=50)
    audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
    rows = Delivery.objects.filter(campaign=campaign)
    control = rows.filter(status=DeliveryStatus.CONTROL)
    assert 0.17 < control.count() / 4000 < 0.23
    a_share = rows.filter(status=DeliveryStatus.QUEUED, variant__label="A").count() / rows.filter(status=DeliveryStatus.QUEUED).count()
    assert 0.46 < a_share < 0.54
    # the two draws are independent: the control group holds both variants in the same proportion
    control_a = control.filter(variant__label="A").count() / control.count()
    assert 0.43 < control_a < 0.57


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    people=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.booleans(), st.lists(st.integers(min_value=0, max_value=12), max_size=5)),
        min_size=1, max_size=6,
    ),
    minute_of_day=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_no_message_without_consent_in_quiet_hours_or_over_the_cap(frozen, outbox, people, minute_of_day):
    """Random members (consent, opt-out, mobile), random send times and random histories of earlier messages."""
    moment = NOW.replace(hour=minute_of_day // 60, minute=minute_of_day % 60)
    with transaction.atomic():
        frozen.move_to(moment)
        campaign = campaign_for(name="now")
        earlier = [campaign_for(name=f"earlier-{n}", status=CampaignStatus.DONE) for n in range(5)]
        members = []
        for consent, opted_out, has_mobile, history in people:
            member = MemberFactory(personalisation_opt_out=opted_out, **({} if has_mobile else {"mobile": ""}))
            Consent.objects.create(member=member, channel="sms", granted=consent)
            members.append(member)
            for before, days_ago in zip(earlier, history):
                sent_at = moment - dt.timedelta(days=days_ago, hours=1)
                Delivery.objects.create(campaign=before, member=member, channel="sms", status=DeliveryStatus.SENT, due_at=sent_at, sent_at=sent_at)
        tiers_recompute(member_ids=[m.pk for m in members], as_of=moment.date())
        audience.deliveries_create(campaign, now=moment, policy=services.SendingPolicy.current())
        sending.dispatch(now=moment)
        policy = services.SendingPolicy.current()
        for delivery in Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENT).select_related("member"):
            member = delivery.member
            assert Consent.objects.get(member=member, channel="sms").granted
            assert not member.personalisation_opt_out and member.mobile
            local = delivery.sent_at.astimezone(NOW.tzinfo).time()
            assert policy.quiet_end <= local < policy.quiet_start
            window = Delivery.objects.filter(
                member=member, is_marketing=True, status=DeliveryStatus.SENT, sent_at__gt=delivery.sent_at - dt.timedelta(days=policy.cap_days)
            )
            assert window.count() <= policy.cap_messages
        transaction.set_rollback(True)
