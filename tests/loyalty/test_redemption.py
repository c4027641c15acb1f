"""Redeeming points for a right, in the service and on the member page: once
per idempotency key, refused with the reason when the balance does not cover
it, and a coupon right gives the member a coupon."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from campaigns.models import Coupon
from campaigns.rewards import right_redeem
from crm.models import OrderStatus
from loyalty import services
from loyalty.models import Balance, PointsEntry, Redemption, Right
from loyalty.services import RedemptionError
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_with_600_points():
    member = MemberFactory(external_id="M-POINTS")
    order = OrderFactory(member=member, ordered_at=dt.datetime(2026, 6, 1, 9, tzinfo=SHANGHAI), amount=Decimal("600.80"))
    services.ledgers_settle(member_ids=[member.pk])
    member.order = order
    return member


def available(member) -> int:
    return Balance.objects.get(member=member).available


def test_a_coupon_right_costs_its_points_once_per_key_and_gives_a_coupon(member_with_600_points):
    member = member_with_600_points
    right = Right.objects.get(name="5元无门槛券")
    redemption, coupon = right_redeem(member=member, right=right, key="checkout-1")
    assert available(member) == 100
    assert coupon.member == member and coupon.value == Decimal("5") and coupon.describe() == "¥5无门槛券"
    again, same_coupon = right_redeem(member=member, right=right, key="checkout-1")  # a retried request
    assert (again.pk, same_coupon.pk) == (redemption.pk, coupon.pk)
    assert available(member) == 100 and Coupon.objects.filter(member=member).count() == 1


@pytest.mark.parametrize(
    "name, key, reason",
    [
        ("5元无门槛券", "", "idempotency key"),
        ("新人礼包（9.9元三件小样）", "k1", "not redeemed with points"),
        ("优先选品", "k2", "higher tier"),
    ],
)
def test_a_redemption_that_cannot_be_made_says_why_and_writes_nothing(member_with_600_points, name, key, reason):
    member = member_with_600_points
    with pytest.raises(RedemptionError, match=reason):
        services.points_redeem(member=member, right=Right.objects.get(name=name), key=key)
    assert not Redemption.objects.exists() and available(member) == 600


def test_more_than_the_balance_is_refused_and_a_refund_that_leaves_it_negative_blocks_redemption(member_with_600_points):
    member = member_with_600_points
    coupon_right, free_shipping = Right.objects.get(name="5元无门槛券"), Right.objects.get(name="免运费")
    services.points_redeem(member=member, right=coupon_right, key="a")
    with pytest.raises(RedemptionError, match="100 available, 200 needed"):
        services.points_redeem(member=member, right=free_shipping, key="b")
    order = member.order
    order.status = OrderStatus.REFUNDED
    order.save()
    services.ledgers_settle(member_ids=[member.pk])
    balance = Balance.objects.get(member=member)
    assert balance.points == -500
    assert list(Balance.objects.filter(points__lt=0).values_list("member__external_id", flat=True)) == ["M-POINTS"]
    with pytest.raises(RedemptionError, match="Not enough points"):
        services.points_redeem(member=member, right=free_shipping, key="c")
    assert PointsEntry.objects.filter(member=member, rule="redemption").count() == 1


def test_the_member_page_shows_points_and_rights_and_redeems_a_coupon(admin_client, member_with_600_points):
    member = member_with_600_points
    page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    assert "points available" in page and "600" in page
    assert "5元无门槛券" in page and "秒杀券" in page  # his rights, and what 白银 (the next tier) adds
    form = admin_client.get(reverse("admin:crm_member_redeem", args=[member.pk])).context["form"]
    key = form.fields["key"].initial
    right = Right.objects.get(name="5元无门槛券")
    response = admin_client.post(reverse("admin:crm_member_redeem", args=[member.pk]), {"right": right.pk, "key": key}, follow=True)
    assert "100 points left" in response.content.decode()
    # The coupon it bought is among the member's coupons on his page, with where it came from.
    coupon = Coupon.objects.get(member=member)
    page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    coupons = page[page.index('data-testid="coupons"'):]
    assert coupon.code in coupons and "points: 5元无门槛券" in coupons and "valid" in coupons
    # The redemption list links to it.
    listed = admin_client.get(reverse("admin:loyalty_redemption_changelist")).content.decode()
    assert f'href="{reverse("admin:campaigns_coupon_change", args=[coupon.pk])}"' in listed
    # The same form sent twice (a double click) redeems once.
    admin_client.post(reverse("admin:crm_member_redeem", args=[member.pk]), {"right": right.pk, "key": key})
    assert Redemption.objects.count() == 1 and available(member) == 100
    # A second redemption the balance does not cover: the reason on the page, nothing written.
    response = admin_client.post(reverse("admin:crm_member_redeem", args=[member.pk]), {"right": right.pk, "key": "another"})
    assert response.status_code == 200 and "Not enough points: 100 available, 500 needed." in response.content.decode()
    assert Redemption.objects.count() == 1


def test_the_personal_data_export_lists_the_ledgers_and_erasure_keeps_the_amounts(admin_client, member_with_600_points):
    import json

    member = member_with_600_points
    services.points_redeem(member=member, right=Right.objects.get(name="免运费"), key="pipl")
    data = json.loads(admin_client.post(reverse("admin:crm_member_personal_data", args=[member.pk]), {"reason": "会员申请"}).content)
    loyalty = data["loyalty"]
    assert loyalty["balance"]["growth_value"] == 60 and loyalty["balance"]["points_available"] == 400
    assert [e["rule"] for e in loyalty["growth_value_entries"]] == ["register", "first_order"]
    assert [(e["rule"], e["amount"]) for e in loyalty["points_entries"]] == [("order_points", 600), ("redemption", -200)]
    assert loyalty["redemptions"][0]["right"] == "免运费"
    admin_client.post(reverse("admin:crm_member_erase", args=[member.pk]), {"reason": "注销"})
    services.ledgers_settle(member_ids=[member.pk])
    assert Balance.objects.get(member=member).available == 400 and PointsEntry.objects.filter(member=member).count() == 2


def test_bad_rules_rights_and_adjustments_are_explained_and_nothing_is_written(admin_client, member_with_600_points):
    from loyalty.models import Adjustment, EarningRule

    rules = EarningRule.objects.count()
    response = admin_client.post(reverse("admin:loyalty_earningrule_add"), {
        "code": "share", "amount": "40", "effective_from": "2027-01-01", "effective_until": "2026-12-31"})
    assert response.status_code == 200 and "The rule must end after it starts." in response.content.decode()
    response = admin_client.post(reverse("admin:loyalty_earningrule_add"), {"code": "share", "amount": "-5", "effective_from": "2027-01-01"})
    assert response.status_code == 200 and "amount" in response.context["adminform"].form.errors
    assert EarningRule.objects.count() == rules
    response = admin_client.post(reverse("admin:loyalty_right_add"), {
        "tier": Right.objects.first().tier_id, "name": "无券面", "kind": "coupon", "coupon_days": "14", "position": "0", "active": "on"})
    assert response.context["adminform"].form.errors["coupon_value"] == ["A coupon right needs the coupon's value."]
    response = admin_client.post(reverse("admin:loyalty_adjustment_add"), {
        "member": member_with_600_points.pk, "ledger": "points", "amount": "0", "reason": "x"})
    assert response.status_code == 200 and "An adjustment needs an amount other than zero." in response.content.decode()
    # An unknown right on the redemption form: the field says so.
    response = admin_client.post(reverse("admin:crm_member_redeem", args=[member_with_600_points.pk]), {"right": "999999", "key": "k"})
    assert response.status_code == 200 and response.context["form"].errors["right"]
    assert not Adjustment.objects.exists() and not Redemption.objects.exists() and available(member_with_600_points) == 600


def test_an_adjustment_in_the_admin_writes_its_entry_and_the_balance(admin_client, member_with_600_points):
    from loyalty.models import Adjustment

    response = admin_client.post(reverse("admin:loyalty_adjustment_add"), {
        "member": member_with_600_points.pk, "ledger": "points", "amount": "-50", "reason": "重复下单补扣"})
    assert response.status_code == 302
    adjustment = Adjustment.objects.get()
    assert adjustment.created_by.username == "boss" and available(member_with_600_points) == 550
    assert PointsEntry.objects.get(rule="adjustment").source_id == adjustment.pk


def test_staff_find_a_members_ledger_entries_and_balance_by_his_member_id(admin_client, member_with_600_points):
    other = MemberFactory(external_id="M-OTHER")
    OrderFactory(member=other, ordered_at=dt.datetime(2026, 6, 2, 9, tzinfo=SHANGHAI), amount=Decimal("77"))
    services.ledgers_settle(member_ids=[other.pk])
    for name in ("loyalty_pointsentry", "loyalty_growthentry", "loyalty_balance"):
        listed = admin_client.get(reverse(f"admin:{name}_changelist"), {"q": "M-POINTS"}).context["cl"].result_list
        assert listed and {row.member_id for row in listed} == {member_with_600_points.pk}, name
    points = admin_client.get(reverse("admin:loyalty_pointsentry_changelist"), {"q": "M-POINTS"}).context["cl"].result_list
    assert [entry.amount for entry in points] == [600]


def test_the_member_page_links_to_his_whole_ledgers_for_those_who_may_read_them(admin_client, client, member_with_600_points):
    from django.contrib.auth.models import Group

    from crm import roles
    from tests.crm.factories import CommunityFactory, GroupLeaderFactory

    member = member_with_600_points
    other = MemberFactory(external_id="M-OTHER")
    OrderFactory(member=other, ordered_at=dt.datetime(2026, 6, 2, 9, tzinfo=SHANGHAI), amount=Decimal("77"))
    services.ledgers_settle(member_ids=[other.pk])
    page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    link = reverse("admin:loyalty_pointsentry_changelist") + "?q=M-POINTS"
    assert f'href="{link}"' in page and "growth value ledger" in page
    listed = admin_client.get(link).context["cl"].result_list
    assert {entry.member_id for entry in listed} == {member.pk} and [entry.amount for entry in listed] == [600]

    leader = GroupLeaderFactory()
    member.community = CommunityFactory(leader=leader)
    member.save()
    leader.user.groups.add(Group.objects.get(name=roles.LEADER))
    client.force_login(leader.user)
    page = client.get(reverse("admin:crm_member_change", args=[member.pk]))
    assert page.status_code == 200 and "points available" in page.content.decode()
    assert "pointsentry" not in page.content.decode()  # a group leader may not read the ledgers: no link that ends in a refusal
