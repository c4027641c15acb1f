"""An order that moves from one member to another (a corrected import, an edit
in the admin) or is deleted changes both members' figures once the transaction
commits."""

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from crm.models import Order
from loyalty.models import Balance
from segments.models import MemberMetrics
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db
TWO_DAYS_AGO = dt.datetime.now(tz=SHANGHAI) - dt.timedelta(days=2)


def paid_orders(member) -> int:
    """Paid orders in 365 days, as the member's page and his tier read them."""
    metrics = MemberMetrics.objects.filter(member=member).first()
    return metrics.orders_365 if metrics else 0


def growth(member) -> int:
    balance = Balance.objects.filter(member=member).first()
    return balance.growth if balance else 0


def test_an_order_moved_in_the_admin_leaves_the_old_members_tier_figures(django_capture_on_commit_callbacks):
    first, second = MemberFactory(), MemberFactory()
    with django_capture_on_commit_callbacks(execute=True):
        order = OrderFactory(member=first, amount=Decimal("300"), ordered_at=TWO_DAYS_AGO)
    assert paid_orders(first) == 1
    with django_capture_on_commit_callbacks(execute=True):
        order = Order.objects.get(pk=order.pk)  # as the admin's form reads it
        order.member = second
        order.save()
    assert (paid_orders(first), paid_orders(second)) == (0, 1)


def test_an_order_moved_by_a_corrected_import_is_taken_from_the_old_member(write_file, django_capture_on_commit_callbacks):
    first, second = MemberFactory(external_id="M-FIRST"), MemberFactory(external_id="M-SECOND")
    when = TWO_DAYS_AGO.strftime("%Y-%m-%d %H:%M")
    for owner in ("M-FIRST", "M-SECOND"):  # the second file corrects the order's member
        path = write_file(f"orders-{owner}.csv", f"order_no,member_external_id,ordered_at,amount\nSO-MOVE-1,{owner},{when},300\n")
        with django_capture_on_commit_callbacks(execute=True):
            call_command("import_orders", str(path), stdout=StringIO(), stderr=StringIO())
        if owner == "M-FIRST":
            assert paid_orders(first) == 1
    assert Order.objects.get(order_no="SO-MOVE-1").member == second
    assert (paid_orders(first), paid_orders(second)) == (0, 1)


def test_a_deleted_order_takes_back_its_growth_value(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        member = MemberFactory()  # settled once created: his registration award
    registered = growth(member)
    assert registered > 0
    with django_capture_on_commit_callbacks(execute=True):
        order = OrderFactory(member=member, amount=Decimal("300"), ordered_at=TWO_DAYS_AGO)
    assert growth(member) > registered
    with django_capture_on_commit_callbacks(execute=True):
        order.delete()
    assert (paid_orders(member), growth(member)) == (0, registered)


def test_a_moved_orders_growth_value_moves_with_it(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first, second = MemberFactory(), MemberFactory()
    registered = growth(first)
    with django_capture_on_commit_callbacks(execute=True):
        order = OrderFactory(member=first, amount=Decimal("300"), ordered_at=TWO_DAYS_AGO)
    with django_capture_on_commit_callbacks(execute=True):
        order = Order.objects.get(pk=order.pk)
        order.member = second
        order.save()
    assert growth(first) == registered and growth(second) > registered
