"""Coupons at the shop's checkout: each reason a coupon is refused, the discount
it gives, and redeemed once; two concurrent redeems of one code, one wins."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Coupon, CouponKind
from crm.models import Category, Product
from tests.crm.factories import MemberFactory

pytestmark = pytest.mark.django_db


def coupon(member, code="C1", **fields):
    now = timezone.now()
    values = {"kind": CouponKind.SPEND_SAVE, "value": Decimal("15"), "threshold": Decimal("59"),
              "valid_from": now - dt.timedelta(days=1), "valid_until": now + dt.timedelta(days=6)} | fields
    return Coupon.objects.create(code=code, member=member, **values)


def basket(member, *lines):
    return {"member_external_id": member.external_id, "lines": [{"sku": sku, "quantity": qty, "unit_price": price} for sku, qty, price in lines]}


@pytest.fixture
def member():
    return MemberFactory(external_id="M1")


def test_a_spend_save_coupon_applies_from_its_minimum(call, member):
    coupon(member)
    below = call("POST", "/coupons/C1/validate", basket(member, ("A", 1, "58.99"))).json()
    assert (below["valid"], below["reason"], below["discount"]) == (False, "below_minimum", "0.00")
    good = call("POST", "/coupons/c1/validate", basket(member, ("A", 2, "29.50"))).json()
    assert (good["valid"], good["discount"], good["terms"]) == (True, "15.00", "满59减15券")


def test_a_category_coupon_needs_that_category_in_the_basket(call, member):
    fresh = Category.objects.create(name="生鲜")
    Product.objects.create(sku="STRAWBERRY", name="草莓", category=fresh)
    coupon(member, kind=CouponKind.CATEGORY, value=Decimal("5"), threshold=None, category=fresh)
    wrong = call("POST", "/coupons/C1/validate", basket(member, ("SOAP", 1, "30"))).json()
    assert wrong["reason"] == "wrong_category"
    right = call("POST", "/coupons/C1/validate", basket(member, ("STRAWBERRY", 1, "3.50"), ("SOAP", 1, "30"))).json()
    assert (right["valid"], right["discount"]) == (True, "3.50")  # never more than the category's lines


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"valid_from": timezone.now() + dt.timedelta(days=1)}, "not_yet_valid"),
        ({"valid_until": timezone.now() - dt.timedelta(seconds=1)}, "expired"),
        ({"redeemed_at": timezone.now()}, "used"),
    ],
)
def test_a_coupon_outside_its_validity_or_used_is_refused(call, member, fields, reason):
    coupon(member, **fields)
    answer = call("POST", "/coupons/C1/validate", basket(member, ("A", 1, "100"))).json()
    assert (answer["valid"], answer["reason"]) == (False, reason)


def test_another_members_coupon_and_an_unknown_code(call, member):
    coupon(MemberFactory(external_id="M2"))
    assert call("POST", "/coupons/C1/validate", basket(member, ("A", 1, "100"))).json()["reason"] == "other_member"
    assert call("POST", "/coupons/NOPE/validate", basket(member, ("A", 1, "100"))).json()["reason"] == "not_found"
    assert call("POST", "/coupons/C1/validate", basket(MemberFactory.build(external_id="GHOST"), ("A", 1, "1"))).status_code == 404


def test_redeemed_once_a_retry_with_the_same_order_succeeds_another_order_is_refused(call, member):
    coupon(member)
    body = basket(member, ("A", 1, "100")) | {"order_no": "SO-1"}
    first = call("POST", "/coupons/C1/redeem", body)
    assert first.status_code == 200 and first.json()["valid"]
    row = Coupon.objects.get(code="C1")
    assert row.redeemed_at is not None and row.redeemed_order_no == "SO-1"
    assert call("POST", "/coupons/C1/redeem", body).status_code == 200  # the shop retried
    again = call("POST", "/coupons/C1/redeem", body | {"order_no": "SO-2"})
    assert again.status_code == 409 and again.json()["type"].endswith("coupon-used")


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_redeems_of_one_code_exactly_one_succeeds():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    from campaigns.checkout import coupon_redeem

    member = MemberFactory(external_id="M1")
    coupon(member)
    outcomes: list[bool] = []
    start = threading.Barrier(8)

    def checkout(order_no: str) -> None:
        try:
            start.wait()
            outcomes.append(coupon_redeem(code="C1", member=member, order_no=order_no).valid)
        finally:
            connection.close()

    threads = [threading.Thread(target=checkout, args=(f"SO-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]
    assert Coupon.objects.get(code="C1").redeemed_order_no.startswith("SO-")
