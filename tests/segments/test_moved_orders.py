"""An order that moves from one member to another (a corrected import, an edit
in the admin) or is deleted, and an event deleted, change the members' figures
once the transaction commits, and, when that task is lost, in the next nightly
runs."""

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


def test_orders_moved_or_deleted_whose_tasks_were_lost_reach_the_next_nightly_run(tmp_path):
    """The per-member tasks of a move in the admin, a move by a corrected file and a
    delete never run (a worker lost them): the next nightly run takes each order out of
    the figures of the member it left, as a full run would."""
    from crm.importing.engine import run_import
    from crm.importing.specs import SPECS
    from segments.services import tiers_recompute, tiers_recompute_nightly

    edited, by_file, deleting, receiving = (MemberFactory() for _ in range(4))
    in_admin = OrderFactory(member=edited, amount=Decimal("300"), ordered_at=TWO_DAYS_AGO)
    in_file = OrderFactory(member=by_file, amount=Decimal("200"), ordered_at=TWO_DAYS_AGO)
    gone = OrderFactory(member=deleting, amount=Decimal("100"), ordered_at=TWO_DAYS_AGO)
    tiers_recompute()
    assert [paid_orders(m) for m in (edited, by_file, deleting, receiving)] == [1, 1, 1, 0]

    order = Order.objects.get(pk=in_admin.pk)  # as the admin's form reads it; no on-commit task runs in this test
    order.member = receiving
    order.save()
    path = tmp_path / "moved.csv"
    path.write_text(f"order_no,member_external_id,ordered_at,amount\n{in_file.order_no},{receiving.external_id},"
                    f"{TWO_DAYS_AGO:%Y-%m-%d %H:%M:%S},200\n", encoding="utf-8")
    assert run_import(SPECS["orders"], path, mode="all").updated == 1  # the engine alone: no task scheduled
    Order.objects.filter(pk=gone.pk).delete()  # the admin's bulk delete
    assert [paid_orders(m) for m in (edited, by_file, deleting)] == [1, 1, 1]  # the stored figures still count them

    tiers_recompute_nightly()
    assert [paid_orders(m) for m in (edited, by_file, deleting, receiving)] == [0, 0, 0, 2]
    fields = ["member_id", "orders_365", "spend_365", "tier_id", "last_order_at"]
    nightly = sorted(MemberMetrics.objects.values_list(*fields))
    tiers_recompute()
    assert nightly == sorted(MemberMetrics.objects.values_list(*fields))


def v_score(member) -> float:
    return MemberMetrics.objects.get(member=member).v_score


def test_a_deleted_event_takes_back_its_v_score_and_growth_value(django_capture_on_commit_callbacks):
    from crm.models import EngagementEvent

    with django_capture_on_commit_callbacks(execute=True):
        member = MemberFactory()
    registered = growth(member)
    with django_capture_on_commit_callbacks(execute=True):
        event = EngagementEvent.objects.create(member=member, kind="share", occurred_at=TWO_DAYS_AGO, count=3)
    assert v_score(member) > 0 and growth(member) == registered + 3 * 30
    with django_capture_on_commit_callbacks(execute=True):
        event.delete()  # recorded by mistake: the admin deletes it
    assert (v_score(member), growth(member)) == (0, registered)


def test_events_deleted_or_corrected_whose_tasks_were_lost_reach_the_next_nightly_runs(tmp_path):
    from crm.importing.engine import run_import
    from crm.importing.specs import SPECS
    from crm.models import EngagementEvent
    from loyalty.services import ledgers_settle, ledgers_settle_nightly
    from segments.services import tiers_recompute, tiers_recompute_nightly

    deleting, correcting = MemberFactory(), MemberFactory()
    shared_at = TWO_DAYS_AGO.replace(microsecond=0)
    for member in (deleting, correcting):
        EngagementEvent.objects.create(member=member, kind="share", occurred_at=shared_at, count=3)
    tiers_recompute()
    ledgers_settle()
    registered_and_shared = growth(deleting)
    shared_thrice = v_score(correcting)
    assert shared_thrice > 0
    EngagementEvent.objects.filter(member=deleting).delete()  # no on-commit task runs in this test: lost
    path = tmp_path / "events.csv"
    path.write_text(f"member_external_id,kind,occurred_at,count\n{correcting.external_id},share,{shared_at:%Y-%m-%d %H:%M:%S},1\n", encoding="utf-8")
    assert run_import(SPECS["events"], path, mode="all").updated == 1  # the engine alone: no task scheduled
    tiers_recompute_nightly()
    ledgers_settle_nightly()
    assert (v_score(deleting), growth(deleting)) == (0, registered_and_shared - 3 * 30)
    assert 0 < v_score(correcting) < shared_thrice and growth(correcting) == registered_and_shared - 2 * 30


def favourite(member):
    return MemberMetrics.objects.get(member=member).favourite_category_id


def test_a_line_edited_or_deleted_on_the_lines_page_moves_its_members_figures(admin_client, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from tests.crm.factories import CategoryFactory, OrderLineFactory, ProductFactory

    fruit, eggs = (ProductFactory(category=CategoryFactory(name=name)) for name in ("水果", "蛋品"))
    with django_capture_on_commit_callbacks(execute=True):
        member = MemberFactory()
        order = OrderFactory(member=member, amount=Decimal("300"), ordered_at=TWO_DAYS_AGO)
        OrderLineFactory(order=order, product=eggs, unit_price=Decimal("100"))
        line = OrderLineFactory(order=order, product=fruit, unit_price=Decimal("200"))
    assert favourite(member) == fruit.category_id
    data = {"order": order.pk, "product": fruit.pk, "quantity": 1, "unit_price": "50.00"}  # mistyped: it was ¥50
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:crm_orderline_change", args=[line.pk]), data)
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.changed_at is not None  # the next nightly run reads the member again too
    assert favourite(member) == eggs.category_id
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:crm_orderline_changelist"),
            {"action": "delete_selected", "_selected_action": [order.lines.get(product=eggs).pk], "post": "yes"},
        )
    assert response.status_code == 302
    assert favourite(member) == fruit.category_id


@pytest.mark.django_db(transaction=True)
def test_a_member_deleted_with_his_events_leaves_no_departure_behind():
    """Deleted from the shell (the admin offers no delete of members): his events go with him."""
    from crm.models import Departure, EngagementEvent, Member

    member = MemberFactory()
    EngagementEvent.objects.create(member=member, kind="share", occurred_at=TWO_DAYS_AGO, count=3)
    member.delete()
    assert not Member.objects.filter(pk=member.pk).exists() and not Departure.objects.exists()


def test_a_product_moved_to_another_category_changes_the_favourites_of_all_who_bought_it(admin_client, tmp_path):
    """A product filed under the wrong category is corrected on the products page or by a
    lines file: the members who bought it (none of whose orders changed) get their favourite
    categories from the next nightly run, which reads everyone as a full run does."""
    from django.urls import reverse

    from crm.importing.engine import run_import
    from crm.importing.specs import SPECS
    from crm.models import Category
    from segments.models import RecomputeRun
    from segments.services import tiers_recompute, tiers_recompute_nightly
    from tests.crm.factories import CategoryFactory, OrderLineFactory, ProductFactory

    yoghurt, eggs = (ProductFactory(category=CategoryFactory(name=name)) for name in ("日化", "蛋品"))
    buyers = [MemberFactory(), MemberFactory()]
    for member in buyers:
        order = OrderFactory(member=member, amount=Decimal("300"), ordered_at=TWO_DAYS_AGO)
        OrderLineFactory(order=order, product=yoghurt, unit_price=Decimal("200"))
        OrderLineFactory(order=order, product=eggs, unit_price=Decimal("100"))
    tiers_recompute()
    assert [favourite(m) for m in buyers] == [yoghurt.category_id] * 2

    dairy = Category.objects.create(name="乳品")
    response = admin_client.post(reverse("admin:crm_product_change", args=[yoghurt.pk]), {"sku": yoghurt.sku, "name": "酸奶", "category": dairy.pk})
    assert response.status_code == 302
    tiers_recompute_nightly()
    assert [favourite(m) for m in buyers] == [dairy.pk] * 2
    assert RecomputeRun.objects.order_by("-id").first().full

    path = tmp_path / "lines.csv"  # a later lines file files it under 蛋品 (one buyer's order only)
    path.write_text(f"order_no,sku,category,quantity,unit_price\n{buyers[0].orders.get().order_no},{yoghurt.sku},蛋品,1,200\n", encoding="utf-8")
    run_import(SPECS["order_lines"], path, mode="all")  # the engine alone: no task scheduled
    tiers_recompute_nightly()
    assert [favourite(m) for m in buyers] == [eggs.category_id] * 2
    tiers_recompute_nightly()  # nothing moved since: an ordinary night again
    assert not RecomputeRun.objects.order_by("-id").first().full
