"""The group leader's worklist: built for a seeded demo community and checked
against a plain computation over the raw rows; short, ordered by priority,
rebuilt without losing what leaders marked; each leader sees only his own."""

import datetime as dt
from collections import defaultdict
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from campaigns.worklist.models import WorklistItem, WorklistKind, WorklistOutcome, WorklistRule, WorklistSettings
from campaigns.worklist.services import follow_up_rates, worklist_build
from crm import roles
from crm.models import Community, GroupLeader, Member, Order, OrderStatus
from segments.models import GroupMove, MemberMetrics, Tier, TierChange
from segments.services import tiers_recompute
from tests.crm.factories import SHANGHAI

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 20)
MORNING = dt.datetime(2026, 11, 20, 7, 30, tzinfo=SHANGHAI)


@pytest.fixture
def demo():
    """The quick start's data set, 1,500 members in three communities, sorted into tiers."""
    with time_machine.travel(MORNING - dt.timedelta(hours=4), tick=False):
        call_command("seed_demo", "--members", "1500", "--seed", "11", "--as-of", str(TODAY - dt.timedelta(days=1)), stdout=StringIO())
        tiers_recompute(as_of=TODAY - dt.timedelta(days=180))  # a tier history, so that some dormant members were once gold
        tiers_recompute(as_of=TODAY)
    return Community.objects.order_by("pk").first()


def expected_reasons(community: Community, now: dt.datetime) -> dict[int, set[str]]:
    """Who should be on the community's list and why, from the raw rows and the written-down rules."""
    today = timezone.localdate(now)
    vip_rank = Tier.objects.get(code="A").rank
    orders = defaultdict(list)
    for member_id, at in Order.objects.filter(member__community=community, status=OrderStatus.PAID).values_list("member_id", "ordered_at"):
        orders[member_id].append(at)
    metrics = {m.member_id: m for m in MemberMetrics.objects.filter(member__community=community).select_related("tier")}
    ever_vip = set(TierChange.objects.filter(to_tier__rank__gte=vip_rank).values_list("member_id", flat=True))
    moves = set(GroupMove.objects.filter(status="pending").values_list("member_id", flat=True))
    expected: dict[int, set[str]] = {}
    for member in Member.objects.filter(community=community, erased_at__isnull=True):
        reasons = set()
        row = metrics.get(member.pk)
        rank = row.tier.rank if row and row.tier else 0
        paid = sorted(orders[member.pk])
        if row and row.risk_band == "high" and (rank >= vip_rank or row.spend_365 >= 1000):
            reasons.add(WorklistKind.AT_RISK)
        if paid and (today - timezone.localdate(paid[-1])).days >= 31 and (rank >= vip_rank or member.pk in ever_vip):
            reasons.add(WorklistKind.DORMANT_VIP)
        if member.birthday and (member.birthday.month, member.birthday.day) == (today.month, today.day):
            reasons.add(WorklistKind.BIRTHDAY)
        if len(paid) == 1 and 3 <= (today - timezone.localdate(paid[0])).days <= 30:
            reasons.add(WorklistKind.NO_SECOND)
        if member.pk in moves:
            reasons.add(WorklistKind.GROUP_MOVE)
        if reasons:
            expected[member.pk] = reasons
    return expected


@pytest.mark.parametrize("which", [0, 1, 2])
def test_the_worklist_of_a_demo_community_lists_the_right_people_with_the_right_reasons(demo, which):
    community = Community.objects.order_by("pk")[which]
    WorklistSettings.objects.filter(pk=1).update(per_leader=10_000)  # the whole list, to compare it
    with time_machine.travel(MORNING, tick=False):
        worklist_build()
        expected = expected_reasons(community, MORNING)
    items = {item.member_id: item for item in WorklistItem.objects.filter(community=community, day=TODAY)}
    kinds_found = {kind for reasons in expected.values() for kind in reasons}
    assert len(kinds_found) >= 2, kinds_found  # the demo holds several kinds of people to call
    assert set(items) == set(expected)
    priority = dict(WorklistRule.objects.values_list("kind", "priority"))
    for member_id, reasons in expected.items():
        item = items[member_id]
        assert item.kind == max(reasons, key=priority.get)
        assert item.leader_id == community.leader_id
        assert len(item.reason.split("；")) == len(reasons)
        assert item.script.startswith(item.member.name[0])  # addressed by surname: 王姐, 李先生 …


def test_the_list_is_short_highest_priority_first_and_a_rebuild_keeps_what_was_marked(demo):
    WorklistSettings.objects.filter(pk=1).update(per_leader=5)
    with time_machine.travel(MORNING, tick=False):
        worklist_build()
        mine = list(WorklistItem.objects.filter(community=demo, day=TODAY).order_by("-priority", "id"))
        expected = expected_reasons(demo, MORNING)
    assert len(mine) == 5 < len(expected)
    priority = dict(WorklistRule.objects.values_list("kind", "priority"))
    best = sorted((max(priority[k] for k in reasons) for reasons in expected.values()), reverse=True)[:5]
    assert [item.priority for item in mine] == best
    marked = mine[0]
    marked.outcome = WorklistOutcome.ORDERED
    marked.save()
    with time_machine.travel(MORNING + dt.timedelta(hours=3), tick=False):
        worklist_build()
    again = WorklistItem.objects.filter(community=demo, day=TODAY)
    assert again.count() == 5 and again.get(pk=marked.pk).outcome == WorklistOutcome.ORDERED
    rates = {row["leader"]: row for row in follow_up_rates(today=TODAY)}
    assert rates[demo.leader.display_name]["marked"] == 1 and rates[demo.leader.display_name]["rate"] == pytest.approx(1 / 5)


def test_a_leader_sees_only_his_own_list(demo, client):
    WorklistSettings.objects.filter(pk=1).update(per_leader=3)
    leader = demo.leader
    leader.user.groups.add(Group.objects.get(name=roles.LEADER))
    client.force_login(leader.user)
    with time_machine.travel(MORNING, tick=False):
        worklist_build()
        html = client.get(reverse("admin:campaigns_worklistitem_changelist")).content.decode()
        mine = list(WorklistItem.objects.filter(leader=leader, day=TODAY))
        theirs = list(WorklistItem.objects.exclude(leader=leader).filter(day=TODAY))
        assert len(mine) == 3 and len(theirs) == 6
        for item in mine:
            assert item.script in html
        for item in theirs:
            assert item.script not in html
            assert client.get(reverse("admin:campaigns_worklistitem_change", args=[item.pk])).status_code == 302
        # His own line of the follow-up table, and nobody else's.
        assert leader.display_name in html
        assert not any(other.display_name in html for other in GroupLeader.objects.exclude(pk=leader.pk))


def test_a_leader_marks_an_item_from_the_list(demo, client):
    with time_machine.travel(MORNING, tick=False):
        worklist_build()
        leader = demo.leader
        leader.user.groups.add(Group.objects.get(name=roles.LEADER))
        client.force_login(leader.user)
        items = list(WorklistItem.objects.filter(leader=leader, day=TODAY).order_by("-priority", "id"))
        url = reverse("admin:campaigns_worklistitem_changelist")
        page = client.get(url)
        formset = page.context["cl"].formset
        data = {
            "form-TOTAL_FORMS": str(len(formset.forms)), "form-INITIAL_FORMS": str(len(formset.forms)),
            "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000", "_save": "Save",
        }
        for n, form in enumerate(formset.forms):
            data[f"form-{n}-id"] = str(form.instance.pk)
            data[f"form-{n}-outcome"] = WorklistOutcome.CONTACTED if form.instance.pk == items[0].pk else ""
            data[f"form-{n}-note"] = "微信聊过" if form.instance.pk == items[0].pk else ""
        response = client.post(url, data)
        assert response.status_code == 302
    first = WorklistItem.objects.get(pk=items[0].pk)
    assert (first.outcome, first.note) == (WorklistOutcome.CONTACTED, "微信聊过") and first.outcome_at is not None
    assert WorklistItem.objects.filter(leader=leader).exclude(pk=first.pk).exclude(outcome="").count() == 0


def test_a_worklist_script_with_an_unknown_variable_is_refused():
    from django.core.exceptions import ValidationError

    rule = WorklistRule.objects.get(kind=WorklistKind.BIRTHDAY)
    rule.script = "{{ salutation }}，{{ member.mobile }}"
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "unknown variable “member.mobile”" in str(refused.value.message_dict["script"])


@pytest.mark.parametrize(
    "day, listed",
    [(dt.date(2027, 2, 28), True), (dt.date(2027, 3, 1), False), (dt.date(2028, 2, 28), False), (dt.date(2028, 2, 29), True)],
)
def test_a_member_born_on_29_february_is_on_his_leaders_list_on_the_28th_in_other_years(day, listed):
    """As the birthday journey greets him then: the leader's call and the message fall on one day."""
    from campaigns.journeys.models import Journey
    from campaigns.journeys.services import journeys_run
    from tests.crm.factories import CommunityFactory, MemberFactory

    member = MemberFactory(community=CommunityFactory(), birthday=dt.date(1992, 2, 29))
    morning = dt.datetime.combine(day, dt.time(7, 30), tzinfo=SHANGHAI)
    with time_machine.travel(morning, tick=False):
        worklist_build()
        Journey.objects.exclude(name="生日祝福").update(active=False)
        journeys_run()
    assert WorklistItem.objects.filter(member=member, day=day, kind=WorklistKind.BIRTHDAY).exists() is listed
    assert member.enrolments.filter(journey__name="生日祝福").exists() is listed


@pytest.mark.parametrize("first_order, listed", [
    (dt.datetime(2026, 11, 17, 21, 30), True),  # three calendar days before, in the evening
    (dt.datetime(2026, 11, 18, 6, 0), False),  # two days before
    (dt.datetime(2026, 10, 21, 0, 5), True),  # thirty days before
    (dt.datetime(2026, 10, 20, 23, 55), False),  # thirty-one
])
def test_a_new_member_without_a_second_order_is_listed_from_the_third_to_the_thirtieth_calendar_day(first_order, listed):
    from tests.crm.factories import CommunityFactory, MemberFactory, OrderFactory

    member = MemberFactory(community=CommunityFactory())
    OrderFactory(member=member, ordered_at=first_order.replace(tzinfo=SHANGHAI))
    with time_machine.travel(MORNING, tick=False):
        tiers_recompute(as_of=TODAY)
        worklist_build()
    item = WorklistItem.objects.filter(member=member, day=TODAY, kind=WorklistKind.NO_SECOND).first()
    assert (item is not None) is listed
    if item:
        days = (TODAY - first_order.date()).days
        assert f"first order {days} days ago" in item.reason
