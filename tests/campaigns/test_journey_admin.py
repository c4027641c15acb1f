"""Journeys in the admin: staff build one with its steps, and read its report
(enrolled, exits by reason, per step sent and converted against the control group)."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from campaigns.journeys.services import journeys_run
from campaigns.models import CampaignStatus, MessageTemplate, Variant
from campaigns.journeys.models import Enrolment, Journey, JourneyStep
from tests.campaigns.test_journeys import START, members_going_dormant
from tests.crm.factories import SHANGHAI, OrderFactory

pytestmark = pytest.mark.django_db


def test_staff_build_a_journey_whose_steps_become_sendable(admin_client):
    template = MessageTemplate.objects.get(name="生日祝福")
    response = admin_client.post(
        reverse("admin:campaigns_journey_add"),
        {
            "name": "老客生日", "active": "on", "description": "", "trigger": "birthday", "trigger_days": "7", "trigger_circle": "",
            "catch_up_days": "2", "exit_on_consent": "on", "priority": "0", "control_share": "0", "conversion_days": "7",
            "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "1", "steps-MAX_NUM_FORMS": "1000",
            "steps-0-day": "0", "steps-0-template": str(template.pk), "steps-0-coupon_kind": "amount", "steps-0-coupon_value": "8",
            "steps-0-coupon_threshold": "", "steps-0-coupon_percent": "", "steps-0-coupon_category": "", "steps-0-coupon_days": "14",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    step = JourneyStep.objects.get(journey__name="老客生日")
    campaign = step.campaign
    assert campaign.status == CampaignStatus.JOURNEY and campaign.coupon_value == Decimal("8") and campaign.coupon_days == 14
    assert Variant.objects.get(campaign=campaign).template == template
    # A journey's step is not one of the campaigns staff manage by hand.
    assert campaign.name not in admin_client.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    step.coupon_value = Decimal("12")
    step.save()
    campaign.refresh_from_db()
    assert campaign.coupon_value == Decimal("12")


def test_the_journey_report_shows_enrolments_exits_and_conversion_against_control(admin_client, outbox):
    journey = Journey.objects.get(name="沉睡唤醒")
    Journey.objects.exclude(pk=journey.pk).update(active=False)
    Journey.objects.filter(pk=journey.pk).update(control_share=30)
    members_going_dormant(30)
    with time_machine.travel(START, tick=False):
        journeys_run()
    sent = list(Enrolment.objects.filter(journey=journey, is_control=False).values_list("member_id", flat=True))
    held = list(Enrolment.objects.filter(journey=journey, is_control=True).values_list("member_id", flat=True))
    back = dt.datetime(2026, 11, 4, 12, 0, tzinfo=SHANGHAI)
    with time_machine.travel(back, tick=False):
        for member_id in sent[:4] + held[:1]:
            OrderFactory(member_id=member_id, ordered_at=back, amount=Decimal("50.00"))
        journeys_run()
    html = admin_client.get(reverse("admin:campaigns_journey_report", args=[journey.pk]))
    assert html.status_code == 200
    context = html.context
    assert context["enrolled"] == 30 and context["control"] == len(held)
    assert dict(context["exits"])["ordered again"] == 5
    d0 = context["steps"][0]["report"]
    [variant, control] = d0["rows"]
    assert (variant["sent"], variant["converted"], variant["revenue"]) == (len(sent), 4, Decimal("50.00") * 4)
    assert (control["held_back"], control["converted"]) == (len(held), 1)
    assert "D5" in html.content.decode()  # the second step is listed, nothing sent yet
