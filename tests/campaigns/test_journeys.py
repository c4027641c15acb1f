"""Journeys with the clock moved day by day: the welcome journey's messages on
their days, the exit on a new order, the cap and quiet hours respected, and no
duplicate however often the periodic pass runs."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, transaction

from campaigns.journeys.services import journeys_run
from campaigns.models import Delivery, DeliveryStatus, MessageTemplate, SkipReason
from campaigns.journeys.models import Enrolment, EnrolmentStatus, ExitReason, Journey, JourneyStep
from campaigns.services import banned_words_in
from crm.models import Consent
from segments.services import tiers_recompute
from tests.campaigns.conftest import campaign_for, member_with
from tests.crm.factories import SHANGHAI, OrderFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)  # the first order: Monday 10:00
WELCOME_DAYS = [1, 3, 7, 15, 30]


def welcome() -> Journey:
    journey = Journey.objects.get(name="首单欢迎")
    Journey.objects.exclude(pk=journey.pk).update(active=False)
    return journey


def run_at(moment: dt.datetime, times: int = 1) -> None:
    with time_machine.travel(moment, tick=False):
        for _ in range(times):
            journeys_run()


def welcome_lines(outbox) -> list[dict]:
    return [line for line in outbox("sms") if Delivery.objects.get(pk=line["id"]).enrolment_id]


def sent_day(line: dict) -> int:
    delivery = Delivery.objects.get(pk=line["id"])
    return (delivery.sent_at.astimezone(SHANGHAI).date() - START.date()).days


@pytest.fixture
def newcomer():
    """A member who placed her first order at START, with SMS consent."""
    with time_machine.travel(START - dt.timedelta(days=3), tick=False):
        member = member_with(True, name="王芳", gender="F", age_band="45-54")
    with time_machine.travel(START, tick=False):
        OrderFactory(member=member, ordered_at=START, amount=Decimal("68.00"))
    return member


def test_the_welcome_journey_sends_each_message_on_its_day_exactly_once(newcomer, outbox):
    journey = welcome()
    for day in range(0, 32):
        # Twice a day, as two beat processes or a retried task would.
        run_at(START + dt.timedelta(days=day, minutes=5), times=2)
    lines = welcome_lines(outbox)
    assert [sent_day(line) for line in lines] == WELCOME_DAYS
    texts = [line["text"] for line in lines]
    assert texts[0].startswith("王姐，感谢您在") and "首单" in texts[0]
    assert "券码Q" in texts[1] and "¥5无门槛券" in texts[1]
    assert "邀1位好友得¥5，邀3位好友得¥20" in texts[3]
    assert all(text.endswith("拒收请回复R") for text in texts)
    steps = JourneyStep.objects.filter(journey=journey)
    assert Delivery.objects.filter(member=newcomer, campaign__journey_step__in=steps).count() == 5
    enrolment = Enrolment.objects.get(member=newcomer, journey=journey)
    assert enrolment.status == EnrolmentStatus.DONE and enrolment.next_step is None


def test_a_new_order_ends_the_welcome_journey(newcomer, outbox):
    welcome()
    for day in range(0, 5):
        run_at(START + dt.timedelta(days=day, minutes=5))
    with time_machine.travel(START + dt.timedelta(days=5), tick=False):
        OrderFactory(member=newcomer, ordered_at=START + dt.timedelta(days=5), amount=Decimal("30.00"))
    for day in range(5, 32):
        run_at(START + dt.timedelta(days=day, hours=1))
    assert [sent_day(line) for line in welcome_lines(outbox)] == [1, 3]
    enrolment = Enrolment.objects.get(member=newcomer)
    assert enrolment.status == EnrolmentStatus.EXITED and enrolment.exit_reason == ExitReason.ORDERED


def test_a_step_due_in_quiet_hours_waits_for_the_morning(newcomer, outbox):
    welcome()
    run_at(START + dt.timedelta(minutes=5))
    late = START.replace(hour=21) + dt.timedelta(days=1)  # D1 falls due at 10:00, but the pass runs at 21:00
    run_at(late)
    assert welcome_lines(outbox) == []
    delivery = Delivery.objects.get(member=newcomer, status=DeliveryStatus.QUEUED)
    due = delivery.due_at.astimezone(SHANGHAI)
    assert due.date() == late.date() + dt.timedelta(days=1) and 8 <= due.hour < 20
    run_at(due + dt.timedelta(minutes=1))
    assert [sent_day(line) for line in welcome_lines(outbox)] == [2]  # D1's message, the next morning


def test_the_steps_of_an_evening_first_order_fall_on_their_calendar_days(outbox):
    """D1 is the day after the first order's day (DOMAIN.md: days are calendar days in Shanghai),
    not 24 hours later: an order at 21:30 gets its D1 message the next morning, not two days on,
    after a day-1 evening lost to quiet hours."""
    welcome()
    evening = START.replace(hour=21, minute=30)
    with time_machine.travel(evening - dt.timedelta(days=3), tick=False):
        member = member_with(True, name="赵敏", gender="F", age_band="25-34")
    with time_machine.travel(evening, tick=False):
        OrderFactory(member=member, ordered_at=evening, amount=Decimal("88.00"))
    for hour in range(0, 24 * 8, 2):  # the beat, every two hours for eight days
        run_at(evening + dt.timedelta(hours=hour, minutes=5))
    lines = welcome_lines(outbox)
    assert [sent_day(line) for line in lines] == [1, 3, 7]
    assert all(8 <= Delivery.objects.get(pk=line["id"]).sent_at.astimezone(SHANGHAI).hour < 20 for line in lines)


@pytest.mark.parametrize("hour", [9, 21])
def test_registered_without_an_order_starts_on_the_seventh_calendar_day_as_its_circle_does(outbox, hour):
    """注册7天未下单: a member registered on 2 November, morning or evening, with no order, is
    enrolled and messaged on 9 November, the day the circle of the same name takes him."""
    journey = Journey.objects.get(name="注册7天未下单")
    Journey.objects.exclude(pk=journey.pk).update(active=False)
    registered = START.replace(hour=hour, minute=30)
    with time_machine.travel(registered, tick=False):
        member = member_with(True, name="钱多多", registered_at=registered)
    for step in range(0, 24 * 9, 2):
        run_at(registered.replace(hour=0, minute=5) + dt.timedelta(hours=step))
    enrolment = Enrolment.objects.get(member=member, journey=journey)
    assert enrolment.started_at.astimezone(SHANGHAI).date() == dt.date(2026, 11, 9)
    first = next(line for line in welcome_lines(outbox))
    assert Delivery.objects.get(pk=first["id"]).sent_at.astimezone(SHANGHAI).date() == dt.date(2026, 11, 9)


def test_the_frequency_cap_holds_for_journey_messages(newcomer, outbox):
    welcome()
    run_at(START + dt.timedelta(minutes=5))
    # Three marketing messages in the two days before D1.
    for n in range(3):
        other = campaign_for(name=f"promo-{n}")
        Delivery.objects.create(
            campaign=other, member=newcomer, channel="sms", status=DeliveryStatus.SENT,
            due_at=START, sent_at=START + dt.timedelta(hours=n + 1),
        )
    run_at(START + dt.timedelta(days=1, minutes=5))
    assert welcome_lines(outbox) == []
    d1 = Delivery.objects.get(member=newcomer, enrolment__isnull=False)
    assert (d1.status, d1.skip_reason) == (DeliveryStatus.SKIPPED, SkipReason.CAP)
    # The journey goes on: D3 and D7 still fall within the seven days of the three promotions, D15 does not.
    for day in range(2, 16):
        run_at(START + dt.timedelta(days=day, minutes=5))
    assert Delivery.objects.filter(member=newcomer, enrolment__isnull=False, skip_reason=SkipReason.CAP).count() == 3
    assert [sent_day(line) for line in welcome_lines(outbox)] == [15]


def test_withdrawn_consent_ends_the_journey_and_stops_queued_messages(newcomer, outbox):
    welcome()
    run_at(START + dt.timedelta(minutes=5))
    Consent.objects.filter(member=newcomer).update(granted=False)
    run_at(START + dt.timedelta(days=1, minutes=5))
    enrolment = Enrolment.objects.get(member=newcomer)
    assert (enrolment.status, enrolment.exit_reason) == (EnrolmentStatus.EXITED, ExitReason.CONSENT)
    assert welcome_lines(outbox) == []


def test_a_member_is_never_in_the_same_journey_twice_at_once(newcomer):
    journey = welcome()
    run_at(START + dt.timedelta(minutes=5))
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrolment.objects.create(journey=journey, member=newcomer, key="again", started_at=START)


def test_the_birthday_journey_greets_once_a_year(outbox):
    Journey.objects.exclude(name="生日祝福").update(active=False)
    birthday = dt.date(1970, 11, 20)
    with time_machine.travel(START, tick=False):
        member = member_with(True, birthday=birthday, name="李强", gender="M", age_band="55+")
    for year in (2026, 2027):
        morning = dt.datetime(year, 11, 20, 0, 30, tzinfo=SHANGHAI)
        run_at(morning, times=2)
        run_at(morning.replace(hour=8, minute=5))  # held back by quiet hours until 08:00
        run_at(morning.replace(hour=12))
    lines = outbox("sms")
    assert len(lines) == 2 and all(line["text"].startswith("李叔，生日快乐") for line in lines)
    assert {Delivery.objects.get(pk=line["id"]).sent_at.astimezone(SHANGHAI).year for line in lines} == {2026, 2027}
    assert Enrolment.objects.filter(member=member).count() == 2


def members_going_dormant(count: int) -> list:
    """Members placed while active (an order 10 days before), who cross into 沉睡 at START (60 days without an order)."""
    with time_machine.travel(START - dt.timedelta(days=50), tick=False):
        members = [member_with(True) for _ in range(count)]
        for member in members:
            OrderFactory(member=member, ordered_at=START - dt.timedelta(days=60))
        tiers_recompute(as_of=(START - dt.timedelta(days=50)).date())
    with time_machine.travel(START, tick=False):
        tiers_recompute(as_of=START.date())
    return members


def test_the_dormant_journey_holds_back_its_control_group_and_reports_it(outbox):
    journey = Journey.objects.get(name="沉睡唤醒")
    Journey.objects.exclude(pk=journey.pk).update(active=False)
    Journey.objects.filter(pk=journey.pk).update(control_share=50)
    members_going_dormant(40)
    run_at(START + dt.timedelta(minutes=5))
    enrolments = Enrolment.objects.filter(journey=journey)
    control = enrolments.filter(is_control=True).count()
    assert enrolments.count() == 40 and 8 <= control <= 32
    run_at(START + dt.timedelta(hours=1))
    d0 = journey.steps.get(day=0).campaign
    assert Delivery.objects.filter(campaign=d0, status=DeliveryStatus.CONTROL).count() == control
    assert len(outbox("sms")) == 40 - control


def test_a_first_import_does_not_start_the_dormant_journey_for_everyone(outbox):
    """Members first evaluated when already dormant are placed in 沉睡, they did not enter it."""
    Journey.objects.exclude(name="沉睡唤醒").update(active=False)
    with time_machine.travel(START - dt.timedelta(days=60), tick=False):
        for _ in range(5):
            OrderFactory(member=member_with(True), ordered_at=START - dt.timedelta(days=60))
    with time_machine.travel(START, tick=False):
        tiers_recompute(as_of=START.date())
    run_at(START + dt.timedelta(minutes=5))
    assert not Enrolment.objects.exists() and outbox("sms") == []


def test_the_tier_up_journey_congratulates_on_the_new_tier(outbox):
    Journey.objects.exclude(name="升级祝贺").update(active=False)
    with time_machine.travel(START - dt.timedelta(days=1), tick=False):
        member = member_with(True, name="赵敏", gender="F", age_band="25-34")
        tiers_recompute()  # placed in C: a first placement, not a move up
    with time_machine.travel(START, tick=False):
        for n in range(7):  # seven orders worth ¥5,600 in 30 days: gold (A)
            OrderFactory(member=member, ordered_at=START - dt.timedelta(days=n * 4), amount=Decimal("800.00"))
        tiers_recompute()
    run_at(START + dt.timedelta(minutes=5), times=2)
    [line] = outbox("sms")
    assert line["text"].startswith("赵女士，恭喜您升级为黄金会员")
    enrolment = Enrolment.objects.get(member=member)
    assert enrolment.tier.code == "A" and enrolment.status == EnrolmentStatus.DONE
    assert Enrolment.objects.filter(member=member).count() == 1


def test_the_default_journey_texts_pass_the_banned_word_check():
    for template in MessageTemplate.objects.filter(name__in=JourneyStep.objects.values("template__name")):
        assert banned_words_in(template.body) == [], template.name


def test_an_erased_member_leaves_his_journeys_and_worklist_and_the_export_shows_them(newcomer, outbox):
    from campaigns.worklist.models import WorklistItem
    from crm.privacy import member_erase, member_personal_data
    from tests.crm.factories import GroupLeaderFactory, UserFactory

    welcome()
    run_at(START + dt.timedelta(days=1, minutes=5))
    leader = GroupLeaderFactory()
    WorklistItem.objects.create(
        day=START.date(), leader=leader, community=newcomer.community, member=newcomer, kind="no_second", priority=60,
        reason="首单后还没有第二单", script="王姐，上次的菜还合口味吗？",
    )
    hq = UserFactory(username="hq", is_superuser=True)
    with time_machine.travel(START + dt.timedelta(days=1, hours=1), tick=False):
        data = member_personal_data(member=newcomer, actor=hq, reason="member asked")
        assert data["journeys"][0]["journey"] == "首单欢迎" and data["worklist"][0]["script"] == "王姐，上次的菜还合口味吗？"
        member_erase(member=newcomer, actor=hq, reason="member asked")
    enrolment = Enrolment.objects.get(member=newcomer)
    assert (enrolment.status, enrolment.exit_reason) == (EnrolmentStatus.EXITED, ExitReason.STOPPED)
    assert not WorklistItem.objects.filter(member=newcomer).exists()
    for day in range(2, 8):
        run_at(START + dt.timedelta(days=day, minutes=5))
    assert [sent_day(line) for line in welcome_lines(outbox)] == [1]
