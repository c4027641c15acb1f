"""Staff redeem a member's points for a coupon on his page, in Chinese, and see the balance fall."""

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.apps import apps

from campaigns.models import Coupon
from loyalty import services
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def member_with_points():
    # A transactional test starts from an emptied database: put the shipped defaults back.
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
    importlib.import_module("loyalty.migrations.0002_defaults").create(apps, None)
    member = MemberFactory(name="张桂兰", gender="F", age_band="55+")
    OrderFactory(member=member, ordered_at=dt.datetime(2026, 6, 1, 9, tzinfo=SHANGHAI), amount=Decimal("600.00"))
    services.ledgers_settle(member_ids=[member.pk])
    return member


def available_on_page(page) -> str:
    return page.locator("[data-testid=loyalty] tr:has(th:text-is('可用积分')) td").inner_text()


def test_redeem_points_for_a_coupon_and_see_the_balance_fall(staff_login, live_server, member_with_points):
    page = staff_login
    page.goto(f"{live_server.url}/admin/crm/member/{member_with_points.pk}/change/")
    assert available_on_page(page) == "600"
    assert "升级白银再享" in page.locator("[data-testid=loyalty]").inner_text()
    page.click(".object-tools a:has-text('积分兑换')")
    assert "可用积分 600" in page.locator("[data-testid=points-available]").inner_text()
    page.select_option("#id_right", label="5元无门槛券（500 积分）")
    page.click("[data-testid=redeem-submit]")
    message = page.locator(".messagelist").inner_text()
    coupon = Coupon.objects.get(member=member_with_points)
    assert "剩余可用积分 100" in message and coupon.code in message
    assert available_on_page(page) == "100"
    # Once more: the balance no longer covers it, and the page says so.
    page.click(".object-tools a:has-text('积分兑换')")
    page.select_option("#id_right", label="5元无门槛券（500 积分）")
    page.click("[data-testid=redeem-submit]")
    assert "积分不足：可用 100，需要 500。" in page.locator("[data-testid=redeem-error]").inner_text()
    assert Coupon.objects.filter(member=member_with_points).count() == 1
