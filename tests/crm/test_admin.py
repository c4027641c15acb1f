"""The member core's admin pages, as staff see them."""

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from crm.models import Consent, ConsentEvent, Member
from tests.crm.factories import (
    CommunityFactory,
    EngagementEventFactory,
    MemberFactory,
    OrderFactory,
    OrderLineFactory,
)

from tests.crm.test_roles import world  # noqa: E402,F401 - every kind of row

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def many_members(db):
    community = CommunityFactory(name="阳光二群")
    members = MemberFactory.create_batch(30, community=community)
    for member in members[:10]:
        OrderFactory(member=member)
    return members


def test_member_list_shows_masked_mobiles_only(admin_client, many_members, django_assert_max_num_queries):
    url = reverse("admin:crm_member_changelist")
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    html = response.content.decode()
    member = many_members[0]
    assert response.status_code == 200
    assert f"{member.mobile[:3]}****{member.mobile[-4:]}" in html
    assert not re.search(r"1[3-9]\d{9}", html), "a full mobile number reached the page"
    assert "阳光二群" in html


def test_member_list_query_count_does_not_grow_with_rows(admin_client, django_assert_max_num_queries):
    MemberFactory.create_batch(5)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(reverse("admin:crm_member_changelist"))
    MemberFactory.create_batch(40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(reverse("admin:crm_member_changelist"))


def test_member_search_by_mobile_prefix_id_or_name(admin_client, many_members):
    target = many_members[3]
    url = reverse("admin:crm_member_changelist")
    for term in (target.mobile[:9], target.external_id, target.name):
        html = admin_client.get(url, {"q": term}).content.decode()
        assert target.external_id in html, term
    assert "0 members" in admin_client.get(url, {"q": "19999"}).content.decode() or "0 " in admin_client.get(url, {"q": "19999"}).content.decode()


def test_member_filters(admin_client, many_members):
    url = reverse("admin:crm_member_changelist")
    ordered = {m.external_id for m in many_members[:10]}
    html = admin_client.get(url, {"has_ordered": "true"}).content.decode()
    shown = set(re.findall(r"M\d{6}", html))
    assert shown == ordered
    other = MemberFactory(community=CommunityFactory(name="翠湖苑1群"), registered_at=dt.datetime(2023, 3, 1, tzinfo=SH))
    html = admin_client.get(url, {"community": other.community_id}).content.decode()
    assert set(re.findall(r"M\d{6}", html)) == {other.external_id}
    html = admin_client.get(url, {"registered_after": "2023-02-01", "registered_before": "2023-03-31"}).content.decode()
    assert set(re.findall(r"M\d{6}", html)) == {other.external_id}
    html = admin_client.get(url, {"leader": other.community.leader_id}).content.decode()
    assert set(re.findall(r"M\d{6}", html)) == {other.external_id}


def test_a_bad_filter_value_is_explained_and_the_rest_still_filters(admin_client, many_members):
    response = admin_client.get(
        reverse("admin:crm_member_changelist"), {"registered_after": "not-a-date", "has_ordered": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="errornote"' in html
    assert set(re.findall(r"M\d{6}", html)) == {m.external_id for m in many_members[:10]}


def test_member_page_shows_orders_engagement_and_consent_without_the_full_mobile(admin_client, django_assert_max_num_queries):
    member = MemberFactory(mobile="13912345678")
    for day in range(1, 26):
        OrderFactory(member=member, ordered_at=dt.datetime(2025, 5, day, 9, tzinfo=SH), amount=Decimal(day))
    EngagementEventFactory(member=member, kind="share", count=4)
    Consent.objects.create(member=member, channel="sms", granted=True, source="import")
    url = reverse("admin:crm_member_change", args=[member.pk])
    with django_assert_max_num_queries(25):
        response = admin_client.get(url)
    html = response.content.decode()
    assert "139****5678" in html and "13912345678" not in html
    # The 20 latest orders, newest first, and a link to all of them.
    assert html.index("SO") < len(html)
    latest = Member.objects.get(pk=member.pk).orders.order_by("-ordered_at")
    assert latest[0].order_no in html and latest[19].order_no in html and latest[20].order_no not in html
    assert f"?member={member.external_id}" in html


def test_changing_a_mobile_and_a_consent_in_the_member_page(admin_client, member_form_data):
    member = MemberFactory(mobile="13912345678")
    consent = Consent.objects.create(member=member, channel="sms", granted=True, source="import")
    url = reverse("admin:crm_member_change", args=[member.pk])
    data = member_form_data(member, consent, new_mobile="137 0000 1111")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    member.refresh_from_db()
    assert member.mobile == "13700001111"
    consent.refresh_from_db()
    assert consent.granted is False
    assert ConsentEvent.objects.filter(member=member, granted=False, source="admin: boss").exists()
    data["new_mobile"] = "12345"
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "11 digits" in response.content.decode()


def test_order_list_and_page(admin_client, django_assert_max_num_queries):
    order = OrderFactory(order_no="SO-A1", amount=Decimal("128.50"))
    OrderLineFactory(order=order, unit_price=Decimal("64.25"), quantity=2)
    OrderFactory.create_batch(20)
    with django_assert_max_num_queries(12):
        html = admin_client.get(reverse("admin:crm_order_changelist")).content.decode()
    assert "SO-A1" in html and "128.50" in html
    html = admin_client.get(reverse("admin:crm_order_changelist"), {"member": order.member.external_id}).content.decode()
    assert set(re.findall(r"SO\d{8}|SO-A1", html)) == {"SO-A1"}
    with django_assert_max_num_queries(20):
        html = admin_client.get(reverse("admin:crm_order_change", args=[order.pk])).content.decode()
    assert "64.25" in html


def test_a_big_table_sorts_only_by_the_columns_an_index_serves(admin_client, settings):
    for number, amount in (("SO-1", "30"), ("SO-2", "10"), ("SO-3", "20")):
        OrderFactory(order_no=number, amount=Decimal(amount), ordered_at=dt.datetime(2026, 11, int(number[-1]), 9, tzinfo=ZoneInfo("Asia/Shanghai")))
    url = reverse("admin:crm_order_changelist")

    def listed(html: str) -> list[str]:
        return list(dict.fromkeys(re.findall(r"SO-\d", html)))

    def sortable(html: str, column: str) -> bool:
        return re.search(rf'<th scope="col" class="[^"]*\bsortable\b[^"]*column-{column}\b', html) is not None

    html = admin_client.get(url, {"o": "4"}).content.decode()  # a small table: any column, 金额 here
    assert sortable(html, "amount") and listed(html) == ["SO-2", "SO-3", "SO-1"]
    settings.ADMIN_SORT_ANY_UP_TO = -1  # as if it held millions (on PostgreSQL the size is the planner's estimate, 0 before ANALYZE): order number (unique) and time ((ordered_at, id) index) stay
    html = admin_client.get(url).content.decode()
    assert sortable(html, "order_no") and sortable(html, "ordered_at")
    assert not sortable(html, "amount") and not sortable(html, "status")
    crafted = admin_client.get(url, {"o": "4"})  # an old link or bookmark: the list opens in its default order
    assert crafted.status_code == 200 and listed(crafted.content.decode()) == ["SO-3", "SO-2", "SO-1"]
    OrderFactory(order_no="SO-4", ordered_at=dt.datetime(2026, 11, 1, 9, tzinfo=ZoneInfo("Asia/Shanghai")))  # the time of SO-1
    # By time, oldest first, ties in the order they were recorded (as the index on (time, id) reads them).
    assert listed(admin_client.get(url, {"o": "3"}).content.decode()) == ["SO-1", "SO-4", "SO-2", "SO-3"]
    assert listed(admin_client.get(url, {"o": "-3"}).content.decode()) == ["SO-3", "SO-2", "SO-4", "SO-1"]


def test_an_events_member_cannot_be_changed_in_its_page(admin_client):
    event = EngagementEventFactory(kind="share", count=2)
    other = MemberFactory()
    url = reverse("admin:crm_engagementevent_change", args=[event.pk])
    assert 'name="member"' not in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"member": other.pk, "kind": "share", "occurred_at_0": "2026-11-01", "occurred_at_1": "09:00:00", "count": 3})
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.count == 3 and event.member_id != other.pk  # the rest of the page saved, the member kept


def test_the_menu_follows_a_change_of_permissions_at_once(client):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("menu", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(user)
    orders = reverse("admin:crm_order_changelist")
    assert orders not in client.get(reverse("admin:index")).content.decode()
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    assert orders in client.get(reverse("admin:index")).content.decode()
    user.user_permissions.remove(Permission.objects.get(codename="view_order"))
    assert orders not in client.get(reverse("admin:crm_member_changelist")).content.decode()


@pytest.mark.parametrize("name", ["community", "grouplead", "category", "product", "tag", "engagementevent", "orderline", "consentevent", "importjob"])
def test_every_other_list_opens(admin_client, name):
    OrderLineFactory()
    EngagementEventFactory()
    url = reverse(f"admin:crm_{'groupleader' if name == 'grouplead' else name}_changelist")
    assert admin_client.get(url).status_code == 200


def test_admin_speaks_chinese_by_default(admin_client, chinese):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "私域会员运营" in html and "会员与订单" in html and "订单明细" in html


def test_chinese_even_when_the_browser_asks_for_english_until_the_user_switches(admin_client, chinese):
    html = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert "私域会员运营" in html
    admin_client.post(reverse("set_language"), {"language": "en", "next": "/admin/"})
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Member operations" in html and "私域会员运营" not in html


def test_the_work_comes_first_and_the_machinery_of_logins_and_task_results_is_for_superusers(client, admin_client, chinese):
    from django.contrib.auth.models import Group

    from crm.roles import HQ
    from tests.crm.factories import UserFactory

    index = admin_client.get(reverse("admin:index")).content.decode()
    ours = index.index('href="/admin/crm/"')
    assert ours < index.index('href="/admin/auth/"') and ours < index.index('href="/admin/axes/"')
    # Named in Chinese like the rest, though the packages name them in English only.
    assert "登录安全" in index and "登录失败尝试" in index and "后台任务结果" in index and "任务结果" in index
    assert "Axes" not in index and "Access attempts" not in index and "Celery Results" not in index and "Task results" not in index
    hq = UserFactory(is_staff=True)
    hq.groups.add(Group.objects.get(name=HQ))
    client.force_login(hq)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'href="/admin/crm/"' in page and 'href="/admin/axes/"' not in page and 'href="/admin/django_celery_results/"' not in page
    assert client.get(reverse("admin:django_celery_results_taskresult_changelist")).status_code == 403


def test_only_a_persons_name_is_headed_xingming(world, admin_client, chinese):  # noqa: F811 - every kind of row, so each list has a table
    """姓名 is a person's name; a campaign's, a tier's or a product's is 名称."""
    import re

    from django.contrib import admin as django_admin

    from campaigns.models import Campaign

    Campaign.objects.get_or_create(name="白银升级冲刺")
    headed = {}
    for model in django_admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        answer = admin_client.get(url)
        if answer.status_code != 200:
            continue
        headers = re.findall(r'<th scope="col"[^>]*>\s*(?:<div class="sortoptions">.*?</div>)?\s*<div class="text">(?:<a [^>]*>|<span>)(.*?)<', answer.content.decode(), re.S)
        headed[model._meta.label] = headers
    with_xingming = sorted(label for label, headers in headed.items() if "姓名" in headers)
    assert with_xingming == ["crm.Member"]
    assert "名称" in headed["campaigns.Campaign"] and "名称" in headed["segments.Tier"]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_each_list_row_has_djangos_own_checkbox_for_actions(admin_client, settings, language):
    """The big lists write the row checkbox directly (it is a tenth of their CPU through the
    widget templates): the markup, label included, is what Django's widget renders."""
    from django.contrib import admin
    from django.contrib.admin.options import ModelAdmin
    from django.utils import translation

    member = MemberFactory(name="张丽")
    settings.LANGUAGE_CODE = language
    with translation.override(language):
        html = admin_client.get(reverse("admin:crm_member_changelist"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
        djangos = str(ModelAdmin.action_checkbox(admin.site._registry[Member], member))
    assert djangos in html
    assert ("选择此对象执行操作" if language == "zh-hans" else "Select this object for an action") in djangos
