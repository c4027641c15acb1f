"""Each role sees and does only what it may: a crawl of every admin URL per role."""

import datetime as dt
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from campaigns.worklist.models import WorklistItem
from campaigns.journeys.models import Enrolment, Journey
from crm import roles
from crm.models import AuditEvent, Consent, ConsentEvent
from crm.importing.models import ImportJob
from segments.models import Tier, TierChange, TierPin
from segments.services import tiers_recompute
from tests.crm.factories import (
    CommunityFactory,
    EngagementEventFactory,
    GroupLeaderFactory,
    MemberFactory,
    OrderFactory,
    OrderLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    """Two communities; every kind of row exists once in each."""
    leader_a = GroupLeaderFactory(display_name="王团长")
    a = CommunityFactory(name="幸福里1群", leader=leader_a)
    b = CommunityFactory(name="阳光花园9群")
    rows = {}
    for key, community in (("a", a), ("b", b)):
        member = MemberFactory(community=community, name=f"会员{key.upper()}", mobile="13800000001" if key == "a" else "13900000009")
        order = OrderFactory(member=member, order_no=f"SO-{key.upper()}")
        line = OrderLineFactory(order=order)
        event = EngagementEventFactory(member=member)
        consent = Consent.objects.create(member=member, channel="sms", granted=True)
        consent_event = ConsentEvent.objects.create(member=member, channel="sms", granted=True, source="seed")
        rows[key] = {"member": member, "order": order, "orderline": line, "engagementevent": event, "consent": consent, "consentevent": consent_event, "community": community}
    AuditEvent.objects.create(action="export", summary="x")
    ImportJob.objects.create(kind="members", original_name="m.csv")
    # Tiers, circles and a pin for both members, so the crawl also covers segments' pages:
    # member A is pinned to gold (A) from today, member B only from 2098 and stays in C.
    tiers_recompute()
    for key, starts in (("a", None), ("b", dt.date(2098, 1, 1))):
        rows[key]["tierpin"] = TierPin.objects.create(
            member=rows[key]["member"], tier=Tier.objects.get(code="A"), ends_on=dt.date(2099, 1, 1), reason="key account",
            **({"starts_on": starts} if starts else {}),
        )
    tiers_recompute()
    for key in ("a", "b"):
        rows[key]["tierchange"] = TierChange.objects.filter(member=rows[key]["member"]).first()
    # A journey enrolment and a worklist item in each community (B's under another leader).
    leaders = {"a": leader_a, "b": GroupLeaderFactory(display_name="李团长")}
    for key in ("a", "b"):
        member, community = rows[key]["member"], rows[key]["community"]
        rows[key]["enrolment"] = Enrolment.objects.create(
            journey=Journey.objects.get(name="首单欢迎"), member=member, key="first_order", started_at=timezone.now()
        )
        rows[key]["worklistitem"] = WorklistItem.objects.create(
            day=timezone.localdate(), leader=leaders[key], community=community, member=member, kind="birthday", priority=70,
            reason="今天生日", script=f"脚本{key.upper()}：生日快乐",
        )
    return {"leader_a": leader_a, **rows}


def user_in(role: str | None, **extra):
    user = UserFactory(**extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def crawl(client):
    """GET every registered model's list, and the page of every row of it."""
    responses = {}
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        url = reverse("admin:%s_%s_changelist" % info)
        responses[url] = client.get(url)
        for pk in model._default_manager.values_list("pk", flat=True)[:50]:
            url = reverse("admin:%s_%s_change" % info, args=[pk])
            responses[url] = client.get(url)
    return responses


def test_the_roles_exist_with_their_rights():
    hq = Group.objects.get(name=roles.HQ)
    leader = Group.objects.get(name=roles.LEADER)
    auditor = Group.objects.get(name=roles.AUDITOR)
    assert hq.permissions.filter(codename="erase_member").exists()
    assert not leader.permissions.filter(codename__in=["view_all_members", "change_member", "export_member", "reveal_mobile"]).exists()
    assert auditor.permissions.filter(codename="view_auditevent").exists()
    assert not auditor.permissions.exclude(codename__startswith="view").exists()


def test_a_group_leader_sees_only_his_own_community_everywhere(client, world):
    world["leader_a"].user.groups.add(Group.objects.get(name=roles.LEADER))
    client.force_login(world["leader_a"].user)
    foreign = ["会员B", "SO-B", "阳光花园9群", world["b"]["member"].external_id, "139****0009", "13900000009", "脚本B", "李团长"]
    for url, response in crawl(client).items():
        assert response.status_code in (200, 302, 403), (url, response.status_code)
        body = response.content.decode()
        for marker in foreign:
            assert marker not in body, (url, marker)
    for key in ("member", "order", "orderline", "engagementevent", "consentevent"):
        obj = world["b"][key]
        url = reverse(f"admin:crm_{key}_change", args=[obj.pk])
        assert client.get(url).status_code == 302  # "does not exist", back to the index
    for key in ("tierpin", "tierchange"):
        url = reverse(f"admin:segments_{key}_change", args=[world["b"][key].pk])
        assert client.get(url).status_code in (302, 403)
    # His own worklist, and only his.
    assert "脚本A：生日快乐" in client.get(reverse("admin:campaigns_worklistitem_changelist")).content.decode()
    for key in ("enrolment", "worklistitem"):
        url = reverse(f"admin:campaigns_{key}_change", args=[world["b"][key].pk])
        assert client.get(url).status_code in (302, 403)
    html = client.get(reverse("admin:crm_member_changelist")).content.decode()
    assert "会员A" in html and "138****0001" in html
    # The autocomplete behind the filters lists only his community.
    found = client.get(reverse("admin:autocomplete"), {"app_label": "crm", "model_name": "member", "field_name": "community", "term": ""}).json()
    assert [item["text"] for item in found["results"]] == ["幸福里1群"]
    # No exports, no imports, no reveals.
    assert client.get(reverse("admin:crm_member_export")).status_code == 403
    assert client.get(reverse("admin:crm_importjob_add")).status_code == 403
    assert client.get(reverse("admin:crm_member_reveal_mobile", args=[world["a"]["member"].pk])).status_code == 403


def test_a_staff_user_without_a_role_sees_no_member(client, world):
    client.force_login(user_in(None, is_staff=True))
    for url, response in crawl(client).items():
        assert response.status_code in (302, 403), url


def test_an_auditor_reads_everything_and_changes_nothing(client, world):
    client.force_login(user_in(roles.AUDITOR, is_staff=True))
    responses = crawl(client)
    assert responses[reverse("admin:crm_member_changelist")].status_code == 200
    assert responses[reverse("admin:crm_auditevent_changelist")].status_code == 200
    html = responses[reverse("admin:crm_member_changelist")].content.decode()
    assert "会员A" in html and "会员B" in html
    member = world["b"]["member"]
    response = client.post(reverse("admin:crm_member_change", args=[member.pk]), {"name": "改掉"})
    assert response.status_code == 403
    member.refresh_from_db()
    assert member.name == "会员B"
    assert client.get(reverse("admin:crm_member_export")).status_code == 403


@pytest.mark.parametrize("role, mine, theirs", [(roles.SA_OPERATOR, "a", "b"), (roles.BC_OPERATOR, "b", "a")])
def test_operators_see_the_members_of_their_tiers_but_not_the_full_numbers(client, world, role, mine, theirs):
    client.force_login(user_in(role, is_staff=True))
    foreign = [world[theirs]["member"].name, world[theirs]["order"].order_no, world[theirs]["member"].external_id]
    responses = crawl(client)
    for url, response in responses.items():
        assert response.status_code in (200, 302, 403), (url, response.status_code)
        body = response.content.decode()
        assert not re.search(r"1[3-9]\d{9}", body), url
        for marker in foreign:
            assert marker not in body, (url, marker)
    html = responses[reverse("admin:crm_member_changelist")].content.decode()
    assert world[mine]["member"].name in html
    assert client.get(reverse("admin:crm_member_change", args=[world[theirs]["member"].pk])).status_code == 302
    # Community names are not personal data: both show in the filter's autocomplete.
    found = client.get(reverse("admin:autocomplete"), {"app_label": "crm", "model_name": "member", "field_name": "community", "term": ""}).json()
    assert len(found["results"]) == 2
    assert responses[reverse("admin:crm_auditevent_changelist")].status_code == 403
    form = client.get(reverse("admin:crm_member_export")).context["form"]
    data = {name: "on" for name, field in form.fields.items() if field.widget.input_type == "checkbox"}
    data["format"] = next(value for value, label in form.fields["format"].choices if label == "csv")
    if "resource" in form.fields:
        data["resource"] = form.fields["resource"].choices[0][0]
    exported = client.post(reverse("admin:crm_member_export"), data).content.decode("utf-8-sig")
    assert world[mine]["member"].external_id in exported and world[theirs]["member"].external_id not in exported
    assert client.get(reverse("admin:crm_member_reveal_mobile", args=[world[mine]["member"].pk])).status_code == 403


def test_a_leader_sees_his_orders_newest_first(client, world):
    import datetime as dt
    from zoneinfo import ZoneInfo

    member = world["a"]["member"]
    for day in (3, 1, 2):
        OrderFactory(member=member, order_no=f"SO-DAY{day}", ordered_at=dt.datetime(2025, 7, day, tzinfo=ZoneInfo("Asia/Shanghai")))
    world["leader_a"].user.groups.add(Group.objects.get(name=roles.LEADER))
    client.force_login(world["leader_a"].user)
    html = client.get(reverse("admin:crm_order_changelist")).content.decode()
    shown = re.findall(r"SO-DAY\d|SO-A\b", html)
    assert shown[:3] == ["SO-DAY3", "SO-DAY2", "SO-DAY1"] and "SO-B" not in html


def test_an_auditor_reads_an_import_but_cannot_confirm_it(client, world):
    from crm.importing.models import ImportStatus

    job = ImportJob.objects.create(kind="members", original_name="m.csv", status=ImportStatus.VALIDATED, valid_rows=1, total_rows=1)
    client.force_login(user_in(roles.AUDITOR, is_staff=True))
    url = reverse("admin:crm_importjob_detail", args=[job.pk])
    html = client.get(url).content.decode()
    assert "m.csv" in html and 'value="all"' not in html
    assert client.post(url, {"action": "all"}).status_code == 403
