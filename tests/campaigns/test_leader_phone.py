"""The group leader's phone pages: his list, his members, his calls, and nobody else's."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from campaigns.worklist.models import WorklistItem, WorklistOutcome
from campaigns.worklist.services import worklist_build
from crm import roles
from crm.models import AuditAction, AuditEvent
from loyalty.services import ledgers_settle
from segments.services import tiers_recompute
from tests.crm.factories import CommunityFactory, GroupLeaderFactory, MemberFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db


def leader_user(username: str, community_name: str):
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=roles.LEADER))
    community = CommunityFactory(name=community_name, leader=GroupLeaderFactory(user=user, display_name=f"{username}团长"))
    return user, community


@pytest.fixture
def morning():
    wang, mine = leader_user("wang", "幸福里1群")
    li, theirs = leader_user("li", "阳光花园9群")
    today = timezone.localdate()
    birthday = MemberFactory(name="张桂兰", gender="F", age_band="55+", community=mine, birthday=today.replace(year=1962), mobile="13800138001")
    newcomer = MemberFactory(name="王芳", gender="F", age_band="35-44", community=mine, mobile="13900139002")
    OrderFactory(member=newcomer, ordered_at=timezone.now() - dt.timedelta(days=5), amount=Decimal("58.00"))
    stranger = MemberFactory(name="赵强", gender="M", age_band="55+", community=theirs, birthday=today.replace(year=1960), mobile="13700137003")
    tiers_recompute()
    worklist_build()
    return {"wang": wang, "li": li, "birthday": birthday, "newcomer": newcomer, "stranger": stranger}


def test_the_leader_sees_his_own_list_as_cards_with_masked_numbers(client, morning):
    client.force_login(morning["wang"])
    page = client.get(reverse("leader:today"))
    text = page.content.decode()
    assert page.status_code == 200
    assert {entry["member"].name for entry in page.context["items"]} == {"张桂兰", "王芳"}
    assert "张阿姨，生日快乐！" in text and "赵强" not in text
    assert "13800138001" not in text and "138****8001" in text
    assert text.count('class="copy"') == 2 and text.count('name="outcome"') == 2 * len(WorklistOutcome.choices)


def test_one_tap_marks_the_outcome_with_the_note(client, morning):
    client.force_login(morning["wang"])
    item = WorklistItem.objects.get(member=morning["birthday"])
    response = client.post(reverse("leader:outcome", args=[item.pk]), {"outcome": WorklistOutcome.CONTACTED, "note": "礼物已送到"})
    assert response.status_code == 302 and response["Location"].endswith(f"#item-{item.pk}")
    item.refresh_from_db()
    assert (item.outcome, item.note) == (WorklistOutcome.CONTACTED, "礼物已送到") and item.outcome_at is not None
    page = client.get(reverse("leader:today")).content.decode()
    assert 'aria-pressed="true">已联系' in page or 'aria-pressed="true">contacted' in page


def test_another_leaders_items_and_members_are_out_of_reach(client, morning):
    client.force_login(morning["wang"])
    theirs = WorklistItem.objects.get(member=morning["stranger"])
    assert client.post(reverse("leader:outcome", args=[theirs.pk]), {"outcome": WorklistOutcome.CONTACTED}).status_code == 404
    assert client.post(reverse("leader:call", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("leader:member", args=[morning["stranger"].pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.outcome == ""


def test_call_reveals_the_number_to_the_items_leader_only_and_logs_why(client, morning, admin_user):
    item = WorklistItem.objects.get(member=morning["birthday"])
    client.force_login(morning["wang"])
    page = client.post(reverse("leader:call", args=[item.pk]))
    assert page.status_code == 200
    assert 'href="tel:13800138001"' in page.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.REVEAL_MOBILE)
    assert event.actor == morning["wang"] and f"worklist item {item.pk}" in event.detail["reason"]
    assert "13900139002" not in page.content.decode()  # that member only

    client.force_login(admin_user)  # sees every member, but the item is not his to call
    assert client.post(reverse("leader:call", args=[item.pk])).status_code == 403
    assert AuditEvent.objects.filter(action=AuditAction.REVEAL_MOBILE).count() == 1


def test_members_search_by_name_or_the_mobiles_last_four_digits(client, morning):
    client.force_login(morning["wang"])
    by_digits = client.get(reverse("leader:members"), {"q": "9002"})
    assert [card["member"] for card in by_digits.context["cards"]] == [morning["newcomer"]]
    by_name = client.get(reverse("leader:members"), {"q": "张"})
    assert [card["member"] for card in by_name.context["cards"]] == [morning["birthday"]]
    everyone = client.get(reverse("leader:members"))
    assert {card["member"].name for card in everyone.context["cards"]} == {"张桂兰", "王芳"}
    card = client.get(reverse("leader:member", args=[morning["newcomer"].pk])).content.decode()
    assert "139****9002" in card and "58" in card
    # What he can tell her: one ¥58 order so far; silver takes 3 orders and ¥1,000 in the year.
    assert "spend ¥942.00 more / buy 2 more times, to reach 白银" in card
    assert "¥58.00</dd>" in card  # his spend, written as money as the gap is
    OrderFactory(member=morning["newcomer"], ordered_at=timezone.now() - dt.timedelta(days=2), amount=Decimal("1200.00"))
    tiers_recompute()
    assert "¥1,258.00</dd>" in client.get(reverse("leader:member", args=[morning["newcomer"].pk])).content.decode()


def test_the_pages_ask_for_the_admin_login_and_the_leaders_permissions(client, morning):
    response = client.get(reverse("leader:today"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    outsider = UserFactory(username="visitor", is_staff=True)
    client.force_login(outsider)
    assert client.get(reverse("leader:today")).status_code == 403
    assert client.get(reverse("leader:members")).status_code == 403


def test_a_members_card_names_his_rights_his_points_and_what_the_next_tier_adds(client, morning):
    """A leader offers what the member's tier gives and names what the next one adds with the gap
    (DOMAIN.md section 8: "再消费¥320升级黄金，多享套装9折")."""
    ledgers_settle()
    client.force_login(morning["wang"])
    card = client.get(reverse("leader:member", args=[morning["newcomer"].pk]))
    text = card.content.decode()
    # Her ¥58 order five days ago: 58 points, pending for the 7-day return window.
    assert (card.context["points"], card.context["pending"]) == (0, 58)
    assert "<dd>58</dd>" in text
    assert card.context["rights"] == "新人礼包（9.9元三件小样）、免运费、5元无门槛券"
    assert 'data-testid="next-adds">秒杀券、满减券</dd>' in text and "白银 adds" in text
    # Two days later her points are available, though the 00:05 run has not refreshed the balance yet.
    with time_machine.travel(timezone.now() + dt.timedelta(days=2, hours=1)):
        client.force_login(morning["wang"])  # a new day's login: sessions end sooner
        later = client.get(reverse("leader:member", args=[morning["newcomer"].pk]))
    assert (later.context["points"], later.context["pending"]) == (58, 0)


def test_a_members_card_lists_the_coupons_she_can_still_use_soonest_ending_first(client, morning):
    """What a leader can remind her of ("您的¥5券21号到期"): open coupons only, no codes."""
    from campaigns.models import Coupon, CouponKind

    newcomer, now = morning["newcomer"], timezone.now()

    def coupon(code, days, **fields):
        fields = {"kind": CouponKind.AMOUNT, "value": Decimal("5"), **fields}
        return Coupon.objects.create(code=code, member=newcomer, valid_from=now - dt.timedelta(days=20), valid_until=now + dt.timedelta(days=days), **fields)
    coupon("LATER0001", 9, kind=CouponKind.SPEND_SAVE, threshold=Decimal("59"), value=Decimal("15"))
    coupon("SOONER001", 2)
    coupon("USED00001", 5, redeemed_at=now)
    coupon("GONE00001", -1)
    client.force_login(morning["wang"])
    card = client.get(reverse("leader:member", args=[newcomer.pk]))

    def day(days):  # as the messages write a coupon's last day: 12月21日
        local = timezone.localtime(now + dt.timedelta(days=days))
        return f"{local.month}月{local.day}日"
    assert card.context["coupons"] == [f"¥5无门槛券, valid until {day(2)}", f"满59减15券, valid until {day(9)}"]
    text = card.content.decode()
    assert 'data-testid="coupons"' in text and "SOONER001" not in text
    assert "满59减15券" not in client.get(reverse("leader:member", args=[morning["birthday"].pk])).content.decode()


def test_a_members_card_says_how_many_more_friends_give_the_next_invite_reward(client, morning):
    """What a leader can encourage ("再邀2位好友就得¥20券"): friends counted from the programme's
    first day; nothing once every reward is reached or while the programme is off."""
    from campaigns.invites.models import InviteSettings
    from crm.models import EngagementEvent

    program = InviteSettings.current()
    program.counts_from = timezone.localdate() - dt.timedelta(days=30)
    program.save()
    newcomer = morning["newcomer"]
    EngagementEvent.objects.create(member=newcomer, kind="invite", occurred_at=timezone.now() - dt.timedelta(days=40), count=2)  # before
    EngagementEvent.objects.create(member=newcomer, kind="invite", occurred_at=timezone.now() - dt.timedelta(days=1), count=1)
    client.force_login(morning["wang"])
    card = client.get(reverse("leader:member", args=[newcomer.pk]))
    assert card.context["invites"] == "1 invited, 2 to go for ¥20"
    assert 'data-testid="invites">1 invited, 2 to go for ¥20</dd>' in card.content.decode()
    EngagementEvent.objects.create(member=newcomer, kind="invite", occurred_at=timezone.now(), count=2)
    assert client.get(reverse("leader:member", args=[newcomer.pk])).context["invites"] == ""
    program.active = False
    program.save()
    assert 'data-testid="invites"' not in client.get(reverse("leader:member", args=[morning["birthday"].pk])).content.decode()
