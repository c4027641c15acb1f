"""Invite-a-friend rewards: what the first-order journey's D15 message promises
(DOMAIN.md 5: 1 friend ¥5, 3 friends ¥20) reaches the member's account as a
coupon, once per milestone, from the program's first day."""

import datetime as dt
import html
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from campaigns.invites.models import InviteReward, InviteSettings
from campaigns.invites.services import invite_rewards_grant
from campaigns.journeys.models import Enrolment, Journey
from campaigns.journeys.services import journeys_run
from campaigns.models import Coupon, Delivery, MessageTemplate, SkipReason
from campaigns.rendering import contexts_for
from campaigns.templating import compile_template, render
from crm.models import EngagementEvent
from crm.privacy import member_personal_data
from tests.campaigns.conftest import NOW, member_with
from tests.crm.factories import SHANGHAI, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(frozen):
    settings = InviteSettings.current()
    settings.counts_from = dt.date(2026, 11, 1)
    settings.save()
    return settings


def import_events(tmp_path, rows, capture) -> None:
    path = tmp_path / f"events-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text("member_external_id,kind,occurred_at,count\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    with capture(execute=True):
        call_command("import_events", str(path), stdout=StringIO(), stderr=StringIO())


def d15_text(member) -> str:
    """The first-order journey's D15 message as this member reads it."""
    body = MessageTemplate.objects.get(name="欢迎D15 邀请有礼").body
    return render(compile_template(body), contexts_for([member.pk])[member.pk])


def coupons_of(member) -> list[tuple[Decimal, str]]:
    return [(c.value, c.describe()) for c in Coupon.objects.filter(member=member).order_by("id")]


def test_each_milestone_gives_its_coupon_once_as_the_d15_message_promises(program, tmp_path, django_capture_on_commit_callbacks):
    member = MemberFactory(external_id="M1", name="王芳")
    assert d15_text(member) == f"王女士，邀请好友加入{member.community.name}：邀1位好友得¥5，邀3位好友得¥20，奖励直接发到您的账户。"

    import_events(tmp_path, ["M1,invite,2026-11-05 09:00:00,1"], django_capture_on_commit_callbacks)
    assert coupons_of(member) == [(Decimal("5"), "¥5无门槛券")]
    coupon = Coupon.objects.get(member=member)
    assert coupon.valid_from == NOW and coupon.valid_until == dt.datetime(2026, 12, 4, 23, 59, 59, tzinfo=SHANGHAI)  # 14 days

    # Two more friends in one row: the third friend's ¥20, dated by the invite that reached it.
    import_events(tmp_path, ["M1,invite,2026-11-10 20:00:00,2", "M1,share,2026-11-10 20:00:00,5"], django_capture_on_commit_callbacks)
    assert coupons_of(member) == [(Decimal("5"), "¥5无门槛券"), (Decimal("20"), "¥20无门槛券")]
    assert InviteReward.objects.get(member=member, friends=3).reached_at == dt.datetime(2026, 11, 10, 20, 0, tzinfo=SHANGHAI)

    # The same file again, a retried task, the nightly net: nothing given twice.
    import_events(tmp_path, ["M1,invite,2026-11-05 09:00:00,1", "M1,invite,2026-11-10 20:00:00,2"], django_capture_on_commit_callbacks)
    assert invite_rewards_grant() == 0
    assert Coupon.objects.filter(member=member).count() == 2 and InviteReward.objects.count() == 2


def test_invites_before_the_first_day_other_events_and_erased_members_earn_nothing(program, tmp_path, django_capture_on_commit_callbacks):
    early, late, erased = MemberFactory(external_id="E"), MemberFactory(external_id="L"), MemberFactory(external_id="X")
    import_events(tmp_path, [
        "E,invite,2026-10-31 23:59:59,3",  # the day before the program: earns nothing
        "L,invite,2026-10-20 10:00:00,2", "L,invite,2026-11-01 00:00:00,1",  # only the last counts: 1 friend
        "L,share,2026-11-02 10:00:00,9",
    ], django_capture_on_commit_callbacks)
    assert coupons_of(early) == [] and coupons_of(late) == [(Decimal("5"), "¥5无门槛券")]
    erased.erased_at = NOW
    erased.save()
    EngagementEvent.objects.create(member=erased, kind="invite", occurred_at=NOW, count=5)
    assert invite_rewards_grant() == 0 and coupons_of(erased) == []


def test_switched_off_nothing_and_switched_on_what_was_missed(program, admin_client, django_capture_on_commit_callbacks):
    member = MemberFactory(external_id="M1")
    program.active = False
    program.save()
    with django_capture_on_commit_callbacks(execute=True):
        EngagementEvent.objects.create(member=member, kind="invite", occurred_at=NOW - dt.timedelta(days=1), count=3)  # the admin, a form
    assert coupons_of(member) == []

    url = reverse("admin:campaigns_invitesettings_change", args=[program.pk])
    form = {"active": "on", "counts_from": "2026-11-01", "milestones": "1:5，3:20", "coupon_days": 14}  # a Chinese comma too
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, form, follow=True)
    assert "within a few minutes" in response.content.decode()
    assert coupons_of(member) == [(Decimal("5"), "¥5无门槛券"), (Decimal("20"), "¥20无门槛券")]
    page = admin_client.get(url).content.decode()
    assert f'<a href="{reverse("admin:campaigns_invitereward_changelist")}">2 rewards, ¥25.00 in coupons, 0 of them used.</a>' in html.unescape(page)

    # The list of rewards, and the member's page says where each coupon came from.
    listed = admin_client.get(reverse("admin:campaigns_invitereward_changelist")).content.decode()
    for coupon in Coupon.objects.filter(member=member):
        assert f'href="{reverse("admin:campaigns_coupon_change", args=[coupon.pk])}"' in listed and coupon.code in listed
    page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    coupons = page[page.index('data-testid="coupons"'):]
    assert "invite reward: 3 friends" in coupons and "invite reward: 1 friends" in coupons
    # What is held about him (PIPL): his rewards, with their coupons.
    held = member_personal_data(member=member, actor=None, reason="member asked")["invite_rewards"]
    assert [(row["friends_invited"], row["value"], row["coupon"]) for row in held] == [
        (reward.friends, str(reward.value), reward.coupon.code) for reward in InviteReward.objects.filter(member=member).order_by("friends")]


@pytest.mark.parametrize("milestones, named", [
    ("3:20, 1:5", "rising order"),
    ("1:5, 1:8", "rising order"),
    ("1:5, 三:20", '"三:20" is not a reward'),
    ("1:600", '"1:600" is not a reward'),
    ("", "This field is required"),
])
def test_wrong_rewards_are_refused_with_what_is_wrong_and_nothing_saved(program, admin_client, milestones, named):
    url = reverse("admin:campaigns_invitesettings_change", args=[program.pk])
    response = admin_client.post(url, {"active": "on", "counts_from": "2026-11-01", "milestones": milestones, "coupon_days": 14})
    assert response.status_code == 200 and named in html.unescape(response.content.decode())
    assert InviteSettings.current().milestones == "1:5, 3:20"


def test_the_d15_message_says_the_rewards_as_set_and_nothing_while_off(program):
    member = MemberFactory(external_id="M1", name="王芳")
    program.milestones = "2:8.5, 5:30"
    program.save()
    assert d15_text(member) == f"王女士，邀请好友加入{member.community.name}：邀2位好友得¥8.5，邀5位好友得¥30，奖励直接发到您的账户。"
    program.active = False
    program.save()
    assert d15_text(member) == f"王女士，邀请好友加入{member.community.name}。"


def test_milestones_changed_later_are_given_to_who_has_reached_them(program):
    member = MemberFactory(external_id="M1")
    EngagementEvent.objects.create(member=member, kind="invite", occurred_at=NOW - dt.timedelta(days=2), count=5)
    assert invite_rewards_grant() == 2  # the 1st and 3rd friends' coupons
    program.milestones = "2:10, 5:50"  # other milestones than the ones he was given: as many, none the same
    program.save()
    assert invite_rewards_grant() == 2
    assert coupons_of(member)[-2:] == [(Decimal("10"), "¥10无门槛券"), (Decimal("50"), "¥50无门槛券")] and invite_rewards_grant() == 0


def test_the_member_is_told_which_coupon_his_friends_earned_him_once(program, frozen, outbox, tmp_path, django_capture_on_commit_callbacks):
    """The shipped journey 邀请有礼到账: one message per reward given (rewards given together:
    one, naming the newest), with that coupon's terms, code and last day; consent holds."""
    Journey.objects.exclude(name="邀请有礼到账").update(active=False)
    member = member_with(True, external_id="M1", name="王芳", gender="F", age_band="25-34")
    silent = member_with(False, external_id="M2")
    # Three friends in one row reach the 1st and the 3rd friend's rewards at once.
    import_events(tmp_path, ["M1,invite,2026-11-18 09:00:00,3", "M2,invite,2026-11-18 09:00:00,1"], django_capture_on_commit_callbacks)
    journeys_run()
    journeys_run()
    twenty = Coupon.objects.get(member=member, value=20)
    [line] = outbox("sms")
    assert line["text"].startswith(
        f"王女士，感谢您邀请好友加入{member.community.name}！邀请奖励¥20无门槛券已发到您的账户，券码{twenty.code}，12月4日前有效。"
    )
    # No SMS consent: his coupon is given, the message is not.
    assert coupons_of(silent) == [(Decimal("5"), "¥5无门槛券")]
    assert Delivery.objects.get(member=silent).skip_reason == SkipReason.NO_CONSENT

    # A later milestone, the next day: a second message, about its own coupon.
    frozen.move_to(NOW + dt.timedelta(days=1))
    program.milestones = "1:5, 3:20, 5:50"
    program.save()
    import_events(tmp_path, ["M1,invite,2026-11-21 09:00:00,2"], django_capture_on_commit_callbacks)
    journeys_run()
    fifty = Coupon.objects.get(member=member, value=50)
    assert [line["text"][:60] for line in outbox("sms")][1:] == [
        f"王女士，感谢您邀请好友加入{member.community.name}！邀请奖励¥50无门槛券已发到您的账户，券码{fifty.code}，12月5日前有效。"[:60]
    ]
    assert list(Enrolment.objects.filter(member=member).order_by("id").values_list("coupon__value", flat=True)) == [20, 50]
