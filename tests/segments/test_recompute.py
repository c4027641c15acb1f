"""The recompute against the database: tiers at the boundaries, history, pins,
the review queue, circles, churn figures, triggers and the commands."""

import csv
import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from crm.models import EngagementEvent, Order, OrderStatus
from segments.models import (
    ChangeReason,
    Circle,
    CircleMembership,
    GroupMove,
    MemberMetrics,
    ReviewStatus,
    Tier,
    TierChange,
    TierPin,
    TierReview,
)
from segments.recompute.nightly import nightly_scope
from segments.services import tier_pin, tier_review_decide, tiers_recompute, tiers_recompute_nightly
from tests.crm.factories import SHANGHAI, CommunityFactory, MemberFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db
AS_OF = dt.date(2026, 11, 20)


def orders(member, *, count: int, total: str, last_days_ago: int, hour: int = 9, spread_days: int = 3):
    """count paid orders adding up to total, the last one last_days_ago days before AS_OF."""
    total = Decimal(total)
    each = (total / count).quantize(Decimal("0.01"))
    amounts = [each] * (count - 1) + [total - each * (count - 1)]
    for n, amount in enumerate(amounts):
        day = AS_OF - dt.timedelta(days=last_days_ago + n * spread_days)
        OrderFactory(member=member, amount=amount, ordered_at=dt.datetime.combine(day, dt.time(hour, 30), tzinfo=SHANGHAI))


def tier_of(member) -> str:
    return MemberMetrics.objects.select_related("tier").get(member=member).tier.code


def names(member) -> set[str]:
    """The circles a member is in, by name."""
    return set(CircleMembership.objects.filter(member=member).values_list("circle__name", flat=True))


@pytest.mark.parametrize(
    ("count", "total", "last_days_ago", "tier"),
    [
        (13, "20000.01", 30, "S"),
        (13, "20000.01", 31, "A"),
        (12, "20000.01", 30, "A"),
        (13, "20000.00", 30, "A"),
        (7, "5000.00", 60, "A"),
        (7, "4999.99", 60, "B"),
        (3, "1000.00", 90, "B"),
        (3, "1000.00", 91, "C"),
    ],
)
def test_the_database_recompute_places_members_at_every_boundary(count, total, last_days_ago, tier):
    member = MemberFactory()
    orders(member, count=count, total=total, last_days_ago=last_days_ago, spread_days=2)
    tiers_recompute(as_of=AS_OF)
    assert tier_of(member) == tier


def test_orders_outside_the_window_and_refunds_do_not_count():
    member = MemberFactory()
    orders(member, count=13, total="26000", last_days_ago=1, spread_days=1)
    # An order of 365 days ago is out of the window (the window is the as-of date and the 364 days before).
    OrderFactory(member=member, amount=Decimal("50000"), ordered_at=dt.datetime.combine(AS_OF - dt.timedelta(days=365), dt.time(10), tzinfo=SHANGHAI))
    OrderFactory(member=member, amount=Decimal("9999"), status="refunded", ordered_at=dt.datetime.combine(AS_OF, dt.time(8), tzinfo=SHANGHAI))
    tiers_recompute(as_of=AS_OF)
    metrics = MemberMetrics.objects.get(member=member)
    assert (metrics.orders_365, metrics.spend_365, metrics.orders_total) == (13, Decimal("26000.00"), 14)
    assert metrics.refund_rate == pytest.approx(1 / 14, abs=1e-4)
    assert metrics.usual_order_hour == 9
    assert tier_of(member) == "S"


def test_a_member_without_orders_is_a_prospect_and_every_move_is_history():
    never, regular = MemberFactory(), MemberFactory()
    orders(regular, count=3, total="1200", last_days_ago=5)
    first = tiers_recompute(as_of=AS_OF)
    assert (tier_of(never), tier_of(regular)) == ("C", "B")
    assert first.tier_changes == 2
    # The next day nothing changed: nothing is written.
    again = tiers_recompute(as_of=AS_OF)
    assert again.tier_changes == 0 and TierChange.objects.count() == 2
    orders(regular, count=4, total="4000", last_days_ago=0)
    tiers_recompute(member_ids=[regular.pk], as_of=AS_OF, reason=ChangeReason.ORDER)
    change = TierChange.objects.filter(member=regular).first()
    assert (change.from_tier.code, change.to_tier.code, change.reason) == ("B", "A", "order")


def test_a_new_order_moves_the_member_once_the_transaction_commits(django_capture_on_commit_callbacks):
    member = MemberFactory()
    orders(member, count=3, total="1200", last_days_ago=5)
    tiers_recompute()
    assert tier_of(member) == "B"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for n in range(7):
            OrderFactory(member=member, amount=Decimal("800"), ordered_at=dt.datetime.now(tz=SHANGHAI) - dt.timedelta(hours=n + 1))
    assert len(callbacks) >= 1
    assert tier_of(member) == "A"
    assert TierChange.objects.filter(member=member, reason="order").exists()


def test_a_bulk_import_schedules_one_batch_not_one_task_per_row(write_file, django_capture_on_commit_callbacks):
    from crm.models import Member

    members = [MemberFactory() for _ in range(5)]
    rows = "\n".join(
        f"SO-IMP-{n},{member.external_id},2026-11-01 10:00,{100 + n}" for n, member in enumerate(members * 4)
    )
    path = write_file("orders.csv", "order_no,member_external_id,ordered_at,amount\n" + rows + "\n")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("import_orders", str(path), stdout=StringIO(), stderr=StringIO())
    assert Order.objects.count() == 20
    # One batch for the 5 members of 20 rows, for the tiers and for the ledgers: not one per row.
    assert sorted(callback.func.__self__.name for callback in callbacks) == [
        "loyalty.tasks.ledgers_settle_members_task", "segments.tasks.recompute_members_task"]
    assert MemberMetrics.objects.filter(member__in=members, orders_total=4).count() == 5
    assert Member.objects.count() == 5


def test_the_nightly_run_catches_recency_crossing_a_boundary_and_skips_quiet_members():
    platinum, quiet = MemberFactory(), MemberFactory()
    orders(platinum, count=13, total="21000", last_days_ago=30, spread_days=1)
    orders(quiet, count=3, total="1500", last_days_ago=10, spread_days=1)
    tiers_recompute(as_of=AS_OF)
    assert tier_of(platinum) == "S"
    run = tiers_recompute_nightly(as_of=AS_OF + dt.timedelta(days=1))
    assert tier_of(platinum) == "A"  # 31 days since the last order
    change = TierChange.objects.filter(member=platinum).first()
    assert (change.reason, change.run_id) == ("nightly", run.pk)
    assert run.members < 2 and not TierChange.objects.filter(member=quiet, run=run).exists()


def test_a_pin_holds_the_tier_until_it_ends():
    member = MemberFactory()
    orders(member, count=3, total="1200", last_days_ago=5)
    tiers_recompute(as_of=AS_OF)
    user = UserFactory()
    tier_pin(member=member, tier=Tier.objects.get(code="S"), ends_on=AS_OF + dt.timedelta(days=3), reason="新店开业大客户", user=user, starts_on=AS_OF)
    tiers_recompute(as_of=AS_OF)
    assert tier_of(member) == "S"
    tiers_recompute_nightly(as_of=AS_OF + dt.timedelta(days=4))
    assert tier_of(member) == "B"
    assert list(TierChange.objects.filter(member=member).values_list("to_tier__code", flat=True)[:2]) == ["B", "S"]


def test_one_outlying_order_sends_the_promotion_to_review():
    member = MemberFactory()
    orders(member, count=8, total="1600", last_days_ago=10)
    tiers_recompute(as_of=AS_OF)
    assert tier_of(member) == "B"
    OrderFactory(member=member, amount=Decimal("30000"), ordered_at=dt.datetime.combine(AS_OF, dt.time(20), tzinfo=SHANGHAI))
    for _ in range(4):
        OrderFactory(member=member, amount=Decimal("200"), ordered_at=dt.datetime.combine(AS_OF, dt.time(9), tzinfo=SHANGHAI))
    run = tiers_recompute(member_ids=[member.pk], as_of=AS_OF)
    review = TierReview.objects.get(member=member)
    assert run.reviews == 1 and tier_of(member) == "B"
    assert (review.to_tier.code, review.largest_order, review.status) == ("S", Decimal("30000.00"), "pending")
    # Recomputing again keeps one pending review, not two.
    tiers_recompute(member_ids=[member.pk], as_of=AS_OF)
    assert TierReview.objects.filter(member=member).count() == 1
    tier_review_decide(review=review, approve=False, user=UserFactory())
    tiers_recompute(member_ids=[member.pk], as_of=AS_OF)
    assert tier_of(member) == "B" and TierReview.objects.filter(member=member, status=ReviewStatus.PENDING).count() == 0


def test_an_approved_review_promotes_and_a_move_becomes_a_group_todo():
    s_group, b_group = CommunityFactory(name="铂金会员群"), CommunityFactory(name="白银会员群")
    Tier.objects.filter(code="S").update(community=s_group)
    Tier.objects.filter(code="B").update(community=b_group)
    member = MemberFactory()
    orders(member, count=8, total="1600", last_days_ago=1)
    tiers_recompute()
    for n in range(5):
        OrderFactory(member=member, amount=Decimal("30000") if n == 0 else Decimal("200"), ordered_at=dt.datetime.now(tz=SHANGHAI) - dt.timedelta(hours=n))
    tiers_recompute(member_ids=[member.pk])
    review = TierReview.objects.get(member=member, status="pending")
    tier_review_decide(review=review, approve=True, user=UserFactory())
    assert tier_of(member) == "S"
    move = GroupMove.objects.get(member=member)
    assert (move.from_community, move.to_community, move.status) == (b_group, s_group, "pending")


def test_circles_are_materialised_and_double_as_automatic_tags():
    dormant, morning = MemberFactory(), MemberFactory()
    orders(dormant, count=3, total="900", last_days_ago=45, hour=20)
    orders(morning, count=5, total="900", last_days_ago=1, hour=7)
    tiers_recompute(as_of=AS_OF)
    assert "沉睡" in names(dormant) and "沉睡" not in names(morning)
    assert "早上下单" in names(morning) and "早上下单" not in names(dormant)
    assert Circle.objects.get(name="沉睡").member_count == 1
    # The dormant member orders again: the next recompute takes him out of the circle.
    orders(dormant, count=1, total="100", last_days_ago=0, hour=20)
    tiers_recompute(member_ids=[dormant.pk], as_of=AS_OF)
    assert "沉睡" not in names(dormant)


def test_high_value_lapsed_means_no_order_in_the_30_day_window_and_dormant_more_than_30_days():
    """DOMAIN.md section 4: 高价值流失 has no order in 30 days (the as-of date and the 29
    before it, as every window), 沉睡 has R > 30."""
    thirty, twenty_nine, thirty_one = MemberFactory(), MemberFactory(), MemberFactory()
    orders(thirty, count=2, total="600", last_days_ago=30)
    orders(twenty_nine, count=2, total="600", last_days_ago=29)
    orders(thirty_one, count=2, total="600", last_days_ago=31)
    tiers_recompute(as_of=AS_OF)
    assert ("高价值流失" in names(thirty), "高价值流失" in names(twenty_nine), "高价值流失" in names(thirty_one)) == (True, False, True)
    assert ("沉睡" in names(thirty), "沉睡" in names(thirty_one)) == (False, True)


def test_a_member_edited_in_the_admin_enters_a_circle_over_his_own_fields_at_once(admin_client, member_form_data, django_capture_on_commit_callbacks):
    """Staff's own circles filter on member fields too (DOMAIN.md section 4): a member's page
    saved with a new household flag moves him in or out once it commits, not at the weekly run."""
    from crm.models import Consent

    Circle.objects.create(name="有娃家庭", kind="circle", rules={"has_children": "true"})
    member = MemberFactory(has_children=False)
    consent = Consent.objects.create(member=member, channel="sms", granted=True, source="import")
    orders(member, count=1, total="100", last_days_ago=3)
    tiers_recompute()
    assert "有娃家庭" not in names(member)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/crm/member/{member.pk}/change/", member_form_data(member, consent, has_children="on"))
    assert response.status_code == 302
    assert "有娃家庭" in names(member)


def test_a_member_added_without_an_order_enters_a_circle_over_his_own_fields_at_the_nightly_run():
    """A member added in the admin has no order to recompute him at once; the next night takes him
    in, not the weekly full run."""
    Circle.objects.create(name="有娃家庭", kind="circle", rules={"has_children": "true"})
    orders(MemberFactory(), count=1, total="100", last_days_ago=3)
    tiers_recompute()
    member = MemberFactory(has_children=True)
    assert "有娃家庭" not in names(member)
    tiers_recompute_nightly()
    assert "有娃家庭" in names(member)
    assert MemberMetrics.objects.get(member=member).tier.code == "C"


def test_a_scoped_run_agrees_with_a_full_run():
    members = [MemberFactory() for _ in range(4)]
    for n, member in enumerate(members):
        orders(member, count=3 + n * 4, total=str(800 + n * 2500), last_days_ago=2 + n * 20, hour=6 + n * 4)
    tied = MemberFactory()  # as many orders at 20:30 as at 08:30: the earlier hour is the usual one
    orders(tied, count=2, total="200", last_days_ago=5, hour=20)
    orders(tied, count=2, total="200", last_days_ago=6, hour=8)
    members.append(tied)
    tiers_recompute(as_of=AS_OF)
    # A day later: two of them order again, one has an order refunded.
    orders(members[0], count=2, total="9000", last_days_ago=0, hour=21)
    orders(members[3], count=1, total="50", last_days_ago=0)
    Order.objects.filter(pk=Order.objects.filter(member=members[1]).order_by("ordered_at").first().pk).update(status=OrderStatus.REFUNDED)
    fields = ["member_id", "orders_365", "spend_365", "last_order_at", "tier_id", "usual_order_hour", "repeat_days",
              "favourite_category_id", "promo_share", "refund_rate", "v_score", "p_alive", "risk_band"]
    snapshot = lambda: (sorted(MemberMetrics.objects.values_list(*fields)), sorted(CircleMembership.objects.values_list("circle_id", "member_id")))  # noqa: E731
    tiers_recompute(member_ids=[member.pk for member in members], as_of=AS_OF)
    scoped = snapshot()
    tiers_recompute(as_of=AS_OF)
    assert scoped == snapshot()
    assert MemberMetrics.objects.get(member=members[0]).usual_order_hour == 6  # three at 06:30 against two at 21:30
    assert MemberMetrics.objects.get(member=members[1]).refund_rate > 0
    assert MemberMetrics.objects.get(member=tied).usual_order_hour == 8


def test_the_nightly_run_gives_what_a_full_run_gives_though_it_reads_lines_only_where_they_changed():
    """The nightly run reads orders and order lines again only for members with
    new orders or an order leaving the 365-day window, and recounts the trend
    windows of members with an order crossing their edge; the others in its
    scope (here a recency crossing 30 days) keep what is stored."""
    from tests.crm.factories import CategoryFactory, OrderLineFactory, ProductFactory

    fruit, eggs, greens = (ProductFactory(category=CategoryFactory(name=name)) for name in ("水果", "蛋品", "蔬菜"))
    leaving, new, crossing, trending, quiet = (MemberFactory() for _ in range(5))

    def bought(member, product, days_ago: int, hour: int, amount: str) -> None:
        at = dt.datetime.combine(AS_OF - dt.timedelta(days=days_ago), dt.time(hour, 30), tzinfo=SHANGHAI)
        OrderLineFactory(order=OrderFactory(member=member, amount=Decimal(amount), ordered_at=at), product=product, unit_price=Decimal(amount))

    bought(leaving, fruit, 364, 7, "900")  # leaves the window on the next day: fruit stops being the favourite
    bought(leaving, eggs, 20, 19, "100")
    bought(leaving, eggs, 40, 19, "100")
    bought(new, greens, 12, 8, "60")
    for days in (30, 35, 50):  # 31 days on the next day: out of the top tier's 30
        bought(crossing, eggs, days, 10, "3000")
    for days in (29, 29, 60, 119):  # on the next day the two of 29 days leave the 30 days and the one of 119 the 90 before
        bought(trending, greens, days, 18, "40")
    bought(quiet, fruit, 3, 9, "80")
    tiers_recompute(as_of=AS_OF)
    assert MemberMetrics.objects.get(member=trending).trend == "rising"
    assert MemberMetrics.objects.get(member=leaving).favourite_category_id == fruit.category_id
    bought(new, fruit, -1, 21, "500")  # ordered on the next day
    bought(new, fruit, -1, 21, "500")

    fields = ["member_id", "orders_365", "spend_365", "last_order_at", "tier_id", "usual_order_hour", "repeat_days", "favourite_category_id",
              "second_category_id", "promo_share", "orders_30d", "orders_prior_90d", "trend", "refund_rate", "p_alive", "risk_band"]
    snapshot = lambda: (sorted(MemberMetrics.objects.values_list(*fields)), sorted(CircleMembership.objects.values_list("circle_id", "member_id")))  # noqa: E731
    scope = nightly_scope(AS_OF + dt.timedelta(days=1))
    assert (scope.lines, scope.trend) == ({leaving.pk, new.pk}, {trending.pk}) and crossing.pk in scope.members
    run = tiers_recompute_nightly(as_of=AS_OF + dt.timedelta(days=1))
    nightly = snapshot()
    assert run.members >= 4  # the four above (a churn band that moved may add the quiet one)
    tiers_recompute(as_of=AS_OF + dt.timedelta(days=1))
    assert nightly == snapshot()
    assert MemberMetrics.objects.get(member=leaving).favourite_category_id == eggs.category_id
    assert MemberMetrics.objects.get(member=new).usual_order_hour == 21
    assert MemberMetrics.objects.get(member=crossing).favourite_category_id == eggs.category_id
    assert MemberMetrics.objects.get(member=trending).trend == "falling"


def _basket(member, days_ago: int, lines: dict, *, promo: tuple = (), order_amount: str | None = None):
    """One paid order days_ago days before AS_OF (negative: after it) with a line per product: {product: price}."""
    from tests.crm.factories import OrderLineFactory

    at = dt.datetime.combine(AS_OF - dt.timedelta(days=days_ago), dt.time(10, 30), tzinfo=SHANGHAI)
    order = OrderFactory(member=member, amount=Decimal(order_amount or sum(Decimal(price) for price in lines.values())), ordered_at=at)
    for product, price in lines.items():
        OrderLineFactory(order=order, product=product, unit_price=Decimal(price), is_promo=product in promo)
    return order


LINE_FIELDS = ["member_id", "favourite_category_id", "second_category_id", "promo_share", "lines_value_cents", "lines_promo_cents",
               "favourite_cents", "second_cents"]


def test_the_nightly_run_adds_and_takes_away_the_lines_that_entered_and_left_the_window_as_a_full_run_reads_them():
    """Members whose order left the window, who ordered anew, or whose pre-order came into
    it: their favourites and promo share from the stored sums and the changed orders'
    lines equal a full run's, also when the favourites swap; where a third category
    could overtake, the member is read whole."""
    from tests.crm.factories import CategoryFactory, ProductFactory

    fruit, eggs, greens, meat = (ProductFactory(category=CategoryFactory(name=name)) for name in ("水果", "蛋品", "蔬菜", "肉类"))
    swapping, growing, preordered, open_race = (MemberFactory() for _ in range(4))
    _basket(swapping, 364, {fruit: "500", eggs: "40"}, promo=(eggs,))  # leaves on the next day: eggs overtake fruit
    _basket(swapping, 10, {fruit: "600", greens: "100"})
    _basket(swapping, 20, {eggs: "800"}, promo=(eggs,))
    _basket(growing, 50, {fruit: "1000", eggs: "500", greens: "100", meat: "50"})
    _basket(preordered, 30, {fruit: "300", eggs: "200"})
    _basket(preordered, -1, {fruit: "50"}, promo=(fruit,))  # recorded now, dated on the next day
    _basket(open_race, 364, {eggs: "100"})  # eggs fall to 200, below greens' 250: only a full read can tell
    _basket(open_race, 15, {fruit: "1000", eggs: "200", greens: "250"})
    tiers_recompute(as_of=AS_OF)
    assert MemberMetrics.objects.get(member=swapping).favourite_category_id == fruit.category_id
    _basket(growing, -1, {eggs: "600", meat: "20"}, promo=(meat,))  # eggs overtake fruit; meat stays below
    snapshot = lambda: sorted(MemberMetrics.objects.values_list(*LINE_FIELDS))  # noqa: E731
    next_day = AS_OF + dt.timedelta(days=1)
    assert {swapping.pk, growing.pk, preordered.pk, open_race.pk} <= nightly_scope(next_day).lines
    tiers_recompute_nightly(as_of=next_day)
    nightly = snapshot()
    tiers_recompute(as_of=next_day)
    assert nightly == snapshot()
    favourites = dict(MemberMetrics.objects.values_list("member_id", "favourite_category_id"))
    assert favourites[swapping.pk] == eggs.category_id and favourites[growing.pk] == eggs.category_id
    assert favourites[preordered.pk] == fruit.category_id
    assert MemberMetrics.objects.get(member=open_race).second_category_id == greens.category_id
    assert MemberMetrics.objects.get(member=swapping).promo_share == round(800 / 1500, 4)


def test_the_nightly_run_reads_the_lines_of_a_settled_member_only_where_they_changed():
    """What the stored sums say is taken as it is: a sum altered by hand is carried
    forward by the nightly run, and a full run reads every line again."""
    from tests.crm.factories import CategoryFactory, ProductFactory

    fruit, eggs, greens = (ProductFactory(category=CategoryFactory(name=name)) for name in ("水果", "蛋品", "蔬菜"))
    member = MemberFactory()
    _basket(member, 364, {fruit: "100"})
    _basket(member, 10, {fruit: "900", eggs: "500", greens: "100"}, promo=(eggs,))
    tiers_recompute(as_of=AS_OF)
    assert MemberMetrics.objects.get(member=member).promo_share == round(500 / 1600, 4)
    MemberMetrics.objects.filter(member=member).update(lines_promo_cents=0)  # as if no line had been on promotion
    next_day = AS_OF + dt.timedelta(days=1)
    tiers_recompute_nightly(as_of=next_day)
    assert MemberMetrics.objects.get(member=member).promo_share == 0.0  # not read again
    tiers_recompute(as_of=next_day)
    assert MemberMetrics.objects.get(member=member).promo_share == round(500 / 1500, 4)


def _at(member, days_ago: int, hour: int, *, status: str = OrderStatus.PAID):
    """One order days_ago days before AS_OF (negative: after it) at hour:30, Shanghai time."""
    at = dt.datetime.combine(AS_OF - dt.timedelta(days=days_ago), dt.time(hour, 30), tzinfo=SHANGHAI)
    return OrderFactory(member=member, amount=Decimal("50"), ordered_at=at, status=status)


HABIT_FIELDS = ["member_id", "usual_order_hour", "hour_orders", "repeat_days"]


def test_the_nightly_run_moves_the_usual_hour_and_repeat_days_by_the_changed_orders_as_a_full_run_counts_them():
    """The usual hour (the earliest of a tie) and the repeat purchase days after orders
    leave the window and new ones come: equal to a full run's, whether the stored
    counts settle them or the member is read again."""
    loses_hour, keeps_hour, later_tie, earlier_tie, backdated, first_paid, refunded_only = (MemberFactory() for _ in range(7))
    for days, hour in ((364, 8), (30, 8), (20, 19), (10, 19)):  # 8 o'clock loses its leaving order: 19 is the usual hour then
        _at(loses_hour, days, hour)
    for days, hour in ((364, 11), (30, 8), (25, 8), (20, 19)):  # the leaving order is not at the usual hour
        _at(keeps_hour, days, hour)
    for days, hour in ((40, 9), (30, 9), (20, 21)):
        _at(later_tie, days, hour)
    for days, hour in ((40, 12), (30, 12), (20, 6)):
        _at(earlier_tie, days, hour)
    for days, hour in ((40, 10), (30, 10)):
        _at(backdated, days, hour)
    _at(first_paid, 15, 9, status=OrderStatus.REFUNDED)
    _at(refunded_only, 15, 9, status=OrderStatus.REFUNDED)
    tiers_recompute(as_of=AS_OF)
    stored = {member_id: (hour, repeat) for member_id, hour, _orders, repeat in MemberMetrics.objects.values_list(*HABIT_FIELDS)}
    assert stored[loses_hour.pk] == (8, 3) and stored[earlier_tie.pk] == (12, 2) and stored[first_paid.pk] == (None, 0)
    _at(later_tie, -1, 21)  # two at 21 against two at 9: 9 stays, the earlier of the tie
    _at(earlier_tie, -1, 6)  # two at 6 against two at 12: 6 becomes the usual hour
    _at(backdated, 30, 14)  # imported late, on a day already counted: no new day
    _at(first_paid, -1, 7)  # the first paid order: a day, and no repeat yet
    _at(first_paid, -1, 20)  # the same day again
    _at(keeps_hour, -1, 19)
    _at(keeps_hour, -2, 19)  # a pre-order for the day after: not counted yet
    next_day = AS_OF + dt.timedelta(days=1)
    assert {loses_hour.pk, keeps_hour.pk, later_tie.pk, earlier_tie.pk, backdated.pk, first_paid.pk} <= nightly_scope(next_day).lines
    tiers_recompute_nightly(as_of=next_day)
    nightly = sorted(MemberMetrics.objects.values_list(*HABIT_FIELDS))
    tiers_recompute(as_of=next_day)
    assert nightly == sorted(MemberMetrics.objects.values_list(*HABIT_FIELDS))
    habits = {member_id: (hour, repeat) for member_id, hour, _orders, repeat in nightly}
    assert habits[loses_hour.pk] == (19, 3)
    assert habits[keeps_hour.pk] == (8, 4)  # 8 and 19 tie at two: 8 is earlier
    assert habits[later_tie.pk] == (9, 3) and habits[earlier_tie.pk] == (6, 3)
    assert habits[backdated.pk] == (10, 1)
    assert habits[first_paid.pk] == (7, 0)
    assert habits[refunded_only.pk] == (None, 0)


def test_the_nightly_run_counts_the_habits_of_a_settled_member_only_where_they_changed():
    """What the stored counts say is taken as it is: repeat days altered by hand are
    carried forward by the nightly run (plus the new day), and a full run counts again."""
    member = MemberFactory()
    for days in (40, 30, 20):
        _at(member, days, 9)
    tiers_recompute(as_of=AS_OF)
    MemberMetrics.objects.filter(member=member).update(repeat_days=40)
    _at(member, -1, 9)
    next_day = AS_OF + dt.timedelta(days=1)
    tiers_recompute_nightly(as_of=next_day)
    assert MemberMetrics.objects.get(member=member).repeat_days == 41  # not read again
    tiers_recompute(as_of=next_day)
    assert (MemberMetrics.objects.get(member=member).repeat_days, MemberMetrics.objects.get(member=member).hour_orders) == (3, 4)


def test_a_member_whose_trend_holds_though_an_order_crossed_its_window_is_left_out_of_the_nightly_run():
    """Only an order crossing a trend window's edge brings these two in: the one whose
    trend turns is written; the other's trend holds, so the run leaves him be, and his
    page counts the 30 days and the 90 before on the day, not from the stored row."""
    from crm.models import Member
    from segments.services import member_standing

    turning, holding = MemberFactory(), MemberFactory()
    # Next day: three leave the 30 days, one the 90 before them; his last order (5 days) crosses
    # no circle's recency edge, which would bring him in for more than his trend.
    for days in (5, 29, 29, 29, 60, 119):
        orders(turning, count=1, total="40", last_days_ago=days)
    for days in (10, 15, 29, 40):  # next day: one leaves the 30 days; 3 against 1 and 2 against 2 are both rising
        orders(holding, count=1, total="40", last_days_ago=days)
    tiers_recompute(as_of=AS_OF)
    stored = lambda member: MemberMetrics.objects.values_list("trend", "orders_30d", "orders_prior_90d").get(member=member)  # noqa: E731
    assert (stored(turning)[0], stored(holding)) == ("rising", ("rising", 3, 1))
    next_day = AS_OF + dt.timedelta(days=1)
    scope = nightly_scope(next_day)
    assert scope.trend_only == {turning.pk, holding.pk}
    run = tiers_recompute_nightly(as_of=next_day)
    assert run.members == 1 and stored(turning)[0] == "falling"
    assert stored(holding) == ("rising", 3, 1)  # left as it was
    standing = member_standing(Member.objects.get(pk=holding.pk), as_of=next_day)
    assert (standing["orders_30d"], standing["orders_prior_90d"]) == (2, 2)
    tiers_recompute(as_of=next_day)  # a full run counts again: the same trend
    assert stored(holding) == ("rising", 2, 2)


def test_a_one_member_run_moves_only_that_member_and_follows_edited_rules():
    mover, bystander = MemberFactory(), MemberFactory()
    for member in (mover, bystander):
        orders(member, count=3, total="900", last_days_ago=45, hour=20)
    tiers_recompute(as_of=AS_OF)
    assert "沉睡" in names(mover) and "沉睡" in names(bystander)
    # The mover now orders every morning: one run for him alone moves him out of one circle and into another.
    orders(mover, count=5, total="500", last_days_ago=0, hour=7, spread_days=1)
    tiers_recompute(member_ids=[mover.pk], as_of=AS_OF)
    assert "沉睡" not in names(mover) and "早上下单" in names(mover)
    assert "沉睡" in names(bystander) and "早上下单" not in names(bystander)
    # Staff narrow the morning tag to before 07:00: the next run for him applies the new rule at once.
    Circle.objects.filter(name="早上下单").update(rules={"usual_hour_from": "5", "usual_hour_to": "6"})
    tiers_recompute(member_ids=[mover.pk], as_of=AS_OF)
    assert "早上下单" not in names(mover)


def test_the_live_count_equals_the_members_the_rules_take(admin_user):
    from crm.privacy import member_erase
    from segments.circles import circle_count, circle_queryset

    regular, dormant, erased, _never = MemberFactory(), MemberFactory(), MemberFactory(), MemberFactory(gender="M")
    orders(regular, count=30, total="6000", last_days_ago=1, hour=7, spread_days=10)
    for member in (dormant, erased):
        orders(member, count=3, total="900", last_days_ago=45, hour=20)
    assert circle_count({"has_ordered": "false"}, as_of=AS_OF) == 4  # no run yet: no metrics rows at all
    tiers_recompute(as_of=AS_OF)
    member_erase(member=erased, actor=admin_user, reason="本人申请")  # keeps its metrics row
    MemberFactory()  # imported after the run: no metrics row yet
    assert circle_count({"has_ordered": "true", "recency_min": "31"}, as_of=AS_OF) == 1  # the dormant one; the erased one is left out
    everyone_ranked = {"tier": [str(pk) for pk in Tier.objects.values_list("pk", flat=True)]}
    assert circle_count(everyone_ranked, as_of=AS_OF) == 3  # each member once, whatever the tier
    assert circle_count({"has_ordered": "false"}, as_of=AS_OF) == 2  # never, and the one without metrics yet
    rule_sets = [circle.rules for circle in Circle.objects.all()] + [
        everyone_ranked,
        {"trend": ["steady", "rising", "falling"]},
        {"risk_band": ["low", "medium", "high"]},
        {"has_ordered": "false"},
        {"has_ordered": "false", "gender": "M"},
        {"has_ordered": "false", "registered_days_min": "30", "orders_365_max": "0"},
        {"recency_max": "5", "gender": "F"},
        {"usual_hour_from": "6", "usual_hour_to": "8", "orders_365_min": "20"},
    ]
    for rules in rule_sets:
        assert circle_count(rules, as_of=AS_OF) == circle_queryset(rules, as_of=AS_OF).count(), rules


def test_churn_figures_rate_a_lapsed_regular_riskier_than_an_active_one():
    active, lapsed = MemberFactory(), MemberFactory()
    orders(active, count=10, total="1000", last_days_ago=2, spread_days=7)
    orders(lapsed, count=10, total="1000", last_days_ago=200, spread_days=7)
    tiers_recompute(as_of=AS_OF)  # two members: too few to fit, the heuristic decides
    a, b = MemberMetrics.objects.get(member=active), MemberMetrics.objects.get(member=lapsed)
    assert a.p_alive > 0.9 and a.risk_band == "low"
    assert b.p_alive < 0.3 and b.risk_band == "high"
    assert a.expected_orders_30d > b.expected_orders_30d


def test_recompute_tiers_and_export_member_metrics_commands(tmp_path):
    member = MemberFactory(external_id="M-EXP")
    orders(member, count=3, total="1500", last_days_ago=10, hour=8)
    target = tmp_path / "metrics.csv"

    def exported() -> list[dict]:
        call_command("export_member_metrics", "--as-of", AS_OF.isoformat(), str(target), stdout=StringIO())
        return list(csv.DictReader(target.open(encoding="utf-8")))

    # No worker ran the settles the orders queued: --tiers-only leaves the ledgers as they are...
    call_command("recompute_tiers", "--as-of", AS_OF.isoformat(), "--tiers-only", stdout=StringIO())
    assert (exported()[0]["growth_value"], exported()[0]["points_available"]) == ("0", "0")
    # ... and a plain run settles them after the tiers, so the export has the members' points too.
    out = StringIO()
    call_command("recompute_tiers", "--as-of", AS_OF.isoformat(), stdout=out)
    assert "1 members evaluated" in out.getvalue() and "B 白银: 1" in out.getvalue()
    assert "Growth value and points settled" in out.getvalue()
    rows = exported()
    assert (rows[0]["growth_value"], rows[0]["points_available"], rows[0]["points_pending"]) == ("260", "1500", "0")  # 10 + 50 + 2 × 100
    assert list(rows[0]) == [
        "external_id", "recency_days", "orders_365", "spend_365", "tier", "p_alive", "expected_orders_30d", "circles",
        "growth_value", "points_available", "points_pending",  # loyalty's columns (tests/loyalty: their values)
    ]
    assert (rows[0]["external_id"], rows[0]["recency_days"], rows[0]["orders_365"], rows[0]["spend_365"], rows[0]["tier"]) == ("M-EXP", "10", "3", "1500.00", "B")
    assert "早上下单" in rows[0]["circles"].split("|")


def test_an_export_for_another_day_than_the_last_recompute_says_which_figures_are_of_which_day(tmp_path):
    member = MemberFactory(external_id="M-DAY")
    orders(member, count=3, total="1500", last_days_ago=10, hour=8)
    target = tmp_path / "metrics.csv"

    def export(day: dt.date) -> tuple[str, list[dict]]:
        err = StringIO()
        call_command("export_member_metrics", "--as-of", day.isoformat(), str(target), stdout=StringIO(), stderr=err)
        return err.getvalue(), list(csv.DictReader(target.open(encoding="utf-8")))

    warning, rows = export(AS_OF)
    assert "No full recompute has run yet" in warning and rows == []
    call_command("recompute_tiers", "--as-of", AS_OF.isoformat(), stdout=StringIO())
    assert export(AS_OF)[0] == ""
    later = AS_OF + dt.timedelta(days=40)
    warning, rows = export(later)
    assert f"are as of {AS_OF}" in warning and f"recompute_tiers --as-of {later}" in warning
    assert rows[0]["recency_days"] == "50"  # counted to the export's day, as the warning says
    tiers_recompute_nightly(as_of=later)  # the night brings everyone to its day too
    assert export(later)[0] == ""


def test_a_past_days_export_and_summary_leave_out_a_member_who_joined_later(tmp_path):
    """A member who registered and ordered after the day was no member that day: the export as of
    the day leaves him out, whether or not today's run gave him a row (its figures count orders
    after the day, with a negative recency), as a run as of that day does; the summary counts the
    day's members only."""
    early = MemberFactory(external_id="M-EARLY", registered_at=dt.datetime(2026, 1, 5, 9, tzinfo=SHANGHAI))
    orders(early, count=3, total="1500", last_days_ago=10)
    late = MemberFactory(external_id="M-LATE", registered_at=dt.datetime(2026, 11, 21, 0, 5, tzinfo=SHANGHAI))
    for day in (21, 22, 23):
        OrderFactory(member=late, amount=Decimal("600"), ordered_at=dt.datetime(2026, 11, day, 9, tzinfo=SHANGHAI))
    target = tmp_path / "metrics.csv"

    def export(*args) -> tuple[dict, str]:
        err = StringIO()
        call_command("export_member_metrics", *args, str(target), stdout=StringIO(), stderr=err)
        return {row["external_id"]: row for row in csv.DictReader(target.open(encoding="utf-8"))}, err.getvalue()

    call_command("recompute_tiers", "--as-of", AS_OF.isoformat(), stdout=StringIO())
    before_today, _ = export("--as-of", AS_OF.isoformat())
    call_command("recompute_tiers", stdout=StringIO())
    assert tier_of(late) == "B"
    out = StringIO()
    call_command("recompute_tiers", "--as-of", AS_OF.isoformat(), stdout=out)
    assert "1 members evaluated" in out.getvalue()
    assert "B 白银: 1" in out.getvalue() and "C " not in out.getvalue()  # not the later member's stored tier
    rows, err = export("--as-of", AS_OF.isoformat())
    assert list(rows) == list(before_today) == ["M-EARLY"]
    assert (rows["M-EARLY"]["recency_days"], rows["M-EARLY"]["orders_365"], rows["M-EARLY"]["tier"]) == ("10", "3", "B")
    assert "Left out 1 members who had not joined by 2026-11-20" in err
    rows, _ = export()  # today: he is there, with his own figures
    assert rows["M-LATE"]["orders_365"] == "3"


def test_a_past_day_covers_a_member_whose_registration_time_is_unknown(tmp_path):
    """Nothing says he joined after the day (imported today without a registration time): a run
    and an export as of the day have him, as a prospect while he had not ordered yet."""
    unknown = MemberFactory(external_id="M-UNKNOWN", registered_at=None)
    OrderFactory(member=unknown, amount=Decimal("50"), ordered_at=dt.datetime(2026, 11, 25, 9, tzinfo=SHANGHAI))
    out = StringIO()
    call_command("recompute_tiers", "--as-of", AS_OF.isoformat(), stdout=out)
    assert "1 members evaluated" in out.getvalue() and "C 潜客/新客: 1" in out.getvalue()
    target = tmp_path / "metrics.csv"
    call_command("export_member_metrics", "--as-of", AS_OF.isoformat(), str(target), stdout=StringIO(), stderr=StringIO())
    row = next(csv.DictReader(target.open(encoding="utf-8")))
    assert (row["external_id"], row["recency_days"], row["orders_365"], row["tier"]) == ("M-UNKNOWN", "", "0", "C")


def test_the_nightly_run_places_its_members_by_the_nights_top_v_line_not_an_earlier_cached_one():
    members = [MemberFactory() for _ in range(20)]
    day = dt.datetime(2026, 10, 1, 10, tzinfo=SHANGHAI)
    for n, member in enumerate(members, start=1):
        EngagementEvent.objects.create(member=member, kind="share", occurred_at=day, count=n)
    tiers_recompute(as_of=AS_OF - dt.timedelta(days=1))  # the top 5% (one member): the line is 20 shares
    influencers = Circle.objects.get(name="影响力节点")
    assert set(CircleMembership.objects.filter(circle=influencers).values_list("member_id", flat=True)) == {members[19].pk}

    later = day + dt.timedelta(days=30)
    EngagementEvent.objects.create(member=members[4], kind="share", occurred_at=later, count=100)  # the new top: the line is his
    EngagementEvent.objects.create(member=members[17], kind="share", occurred_at=later, count=3)  # 21: above the old line only
    tiers_recompute_nightly(as_of=AS_OF)
    inside = set(CircleMembership.objects.filter(circle=influencers).values_list("member_id", flat=True))
    assert members[4].pk in inside and members[17].pk not in inside


def test_a_past_days_top_v_line_is_drawn_over_that_days_members_whatever_ran_before(tmp_path):
    """Members who joined after the day, with rows and V scores from today's run, are no part of
    the day's top 5%: the day's influencers are the same whether or not today's run came first."""
    early = [MemberFactory(external_id=f"E{n:02}") for n in range(1, 21)]
    for n, member in enumerate(early, start=1):
        EngagementEvent.objects.create(member=member, kind="share", occurred_at=dt.datetime(2026, 10, 1, 10, tzinfo=SHANGHAI), count=n)
    for n in range(5):
        late = MemberFactory(registered_at=dt.datetime(2026, 11, 25, 10, tzinfo=SHANGHAI))
        EngagementEvent.objects.create(member=late, kind="share", occurred_at=dt.datetime(2026, 11, 26, 10, tzinfo=SHANGHAI), count=100)
    influencers = Circle.objects.get(name="影响力节点")

    def the_days_influencers() -> set[str]:
        tiers_recompute(as_of=AS_OF)
        target = tmp_path / "metrics.csv"
        call_command("export_member_metrics", "--as-of", AS_OF.isoformat(), str(target), stdout=StringIO(), stderr=StringIO())
        exported = {row["external_id"] for row in csv.DictReader(target.open(encoding="utf-8")) if "影响力节点" in row["circles"].split("|")}
        kept = CircleMembership.objects.filter(circle=influencers, member__external_id__startswith="E")
        assert exported == set(kept.values_list("member__external_id", flat=True))
        return exported

    assert the_days_influencers() == {"E20"}  # the top 5% of the day's 20 members: one
    tiers_recompute()  # today: the five who joined later take the top places
    assert the_days_influencers() == {"E20"}


def test_an_erased_member_takes_no_place_in_the_top_v_line(admin_user):
    from crm.privacy import member_erase

    members = [MemberFactory() for _ in range(20)]
    for n, member in enumerate(members, start=1):
        EngagementEvent.objects.create(member=member, kind="share", occurred_at=dt.datetime(2026, 10, 1, 10, tzinfo=SHANGHAI), count=n)
    tiers_recompute(as_of=AS_OF)
    member_erase(member=members[19], actor=admin_user, reason="本人申请")  # the top V, kept in the metrics
    tiers_recompute(as_of=AS_OF)
    influencers = Circle.objects.get(name="影响力节点")
    # The top 5% of the 19 members who can be in a circle is one: the best of them, not nobody.
    assert set(CircleMembership.objects.filter(circle=influencers).values_list("member_id", flat=True)) == {members[18].pk}


def test_an_erased_member_leaves_every_circle(admin_user):
    from crm.privacy import member_erase

    member = MemberFactory()
    orders(member, count=3, total="900", last_days_ago=45)
    tiers_recompute(as_of=AS_OF)
    assert CircleMembership.objects.filter(member=member).exists()
    member_erase(member=member, actor=admin_user, reason="本人申请")
    assert not CircleMembership.objects.filter(member=member).exists()
    tiers_recompute(as_of=AS_OF)
    assert not CircleMembership.objects.filter(member=member).exists()


def test_pins_are_respected_even_without_orders():
    member = MemberFactory()
    TierPin.objects.create(member=member, tier=Tier.objects.get(code="A"), ends_on=AS_OF, starts_on=AS_OF, reason="试点")
    tiers_recompute(as_of=AS_OF)
    assert tier_of(member) == "A"


def test_churn_inputs_count_local_days():
    """00:30 and 23:30 in Shanghai are 16:30 and 15:30 UTC: the days are local ones."""
    from django.db import connection

    from segments.recompute.scores import churn_inputs

    member = MemberFactory()
    for day, hour in ((AS_OF - dt.timedelta(days=19), dt.time(0, 30)), (AS_OF - dt.timedelta(days=10), dt.time(23, 30))):
        OrderFactory(member=member, amount=Decimal("50"), ordered_at=dt.datetime.combine(day, hour, tzinfo=SHANGHAI))
    tiers_recompute(as_of=AS_OF)
    with connection.cursor() as cursor:
        inputs = churn_inputs(cursor, AS_OF, staged=False)
    assert (inputs.member_ids.tolist(), inputs.x.tolist(), inputs.t_x_days.tolist(), inputs.T_days.tolist()) == ([member.pk], [1.0], [9.0], [19.0])


def test_an_order_in_the_early_hours_of_the_windows_first_day_counts():
    """Windows are local (Asia/Shanghai) days: 01:00 local on the first day is 17:00 UTC the day before."""
    member = MemberFactory()
    first_day = AS_OF - dt.timedelta(days=364)
    OrderFactory(member=member, amount=Decimal("50"), ordered_at=dt.datetime.combine(first_day, dt.time(1, 0), tzinfo=SHANGHAI))
    OrderFactory(member=member, amount=Decimal("70"), ordered_at=dt.datetime.combine(first_day, dt.time(1, 0), tzinfo=SHANGHAI) - dt.timedelta(hours=2))
    tiers_recompute(as_of=AS_OF)
    metrics = MemberMetrics.objects.get(member=member)
    assert (metrics.orders_365, metrics.spend_365) == (1, Decimal("50.00"))


def test_an_order_saved_while_the_ladder_is_unusable_is_kept_and_waits(django_capture_on_commit_callbacks):
    member = MemberFactory()
    Tier.objects.filter(is_catch_all=True).update(is_catch_all=False)
    with django_capture_on_commit_callbacks(execute=True):
        OrderFactory(member=member, amount=Decimal("30"))
    assert Order.objects.filter(member=member).count() == 1
    assert not MemberMetrics.objects.filter(member=member).exists()


@pytest.mark.parametrize("one_pass", [True, False], ids=["one pass", "circle by circle"])
def test_a_scoped_run_puts_each_member_in_exactly_the_circles_the_rules_take(admin_user, monkeypatch, one_pass):
    """A scoped run evaluates every circle in one pass over the scope's rows
    (LEFT joins); the rules themselves are Django querysets (INNER joins where
    a rule reads the metrics). Both must take the same members, for every kind
    of rule; the circle-by-circle path is the fallback for rules joining other tables."""
    from crm.models import AgeBand
    from crm.privacy import member_erase
    from segments.circles import circle_queryset
    from segments.recompute import circles as recompute_circles
    from tests.crm.factories import CategoryFactory, EngagementEventFactory, OrderLineFactory, ProductFactory

    monkeypatch.setattr(recompute_circles, "_COMPILED", {})
    if not one_pass:
        monkeypatch.setattr(recompute_circles, "_RULE_JOINS", {})
    fresh = ProductFactory(category=CategoryFactory(name="生鲜"))
    community = CommunityFactory(name="阳光花园群")
    regular = MemberFactory(gender="M", age_band=AgeBand.choices[2][0], lives_alone=True, community=community)
    orders(regular, count=30, total="6000", last_days_ago=1, hour=7, spread_days=10)
    OrderLineFactory(order=Order.objects.filter(member=regular).first(), product=fresh, unit_price=Decimal("500"))
    EngagementEventFactory(member=regular, kind="invite", count=5, occurred_at=dt.datetime.combine(AS_OF, dt.time(12), tzinfo=SHANGHAI))
    dormant, returning, erased = MemberFactory(has_children=True), MemberFactory(), MemberFactory()
    orders(dormant, count=3, total="900", last_days_ago=45, hour=20)
    orders(returning, count=4, total="400", last_days_ago=3, hour=12)
    Order.objects.filter(pk=Order.objects.filter(member=returning).first().pk).update(status=OrderStatus.REFUNDED)
    orders(erased, count=3, total="900", last_days_ago=45)
    never = MemberFactory(registered_at=dt.datetime.combine(AS_OF - dt.timedelta(days=30), dt.time(9), tzinfo=SHANGHAI))
    tiers_recompute(as_of=AS_OF)
    member_erase(member=erased, actor=admin_user, reason="本人申请")
    unmeasured = MemberFactory(registered_at=never.registered_at)  # no metrics row yet
    tiers = [str(pk) for pk in Tier.objects.filter(code__in=["S", "C"]).values_list("pk", flat=True)]
    rule_sets = [
        {"tier": tiers}, {"has_ordered": "false"}, {"has_ordered": "false", "registered_days_min": "7"},
        {"recency_min": "31"}, {"recency_max": "5", "gender": "M"}, {"orders_365_min": "4", "orders_365_max": "30"},
        {"monthly_orders_below": "2"}, {"spend_365_min": "900", "spend_365_max": "6000"}, {"avg_order_value_min": "150"},
        {"promo_share_max": "0.1", "orders_365_min": "1"}, {"refund_rate_min": "0.2"}, {"v_score_min": "1"}, {"v_top_percent": "20"},
        {"trend": ["rising", "falling"]}, {"risk_band": ["high"]}, {"p_alive_max": "0.5"},
        {"favourite_category": str(fresh.category_id)}, {"favourite_category_name": "生鲜"}, {"usual_hour_from": "5", "usual_hour_to": "10"},
        {"age_band": [regular.age_band]}, {"community": str(community.pk)}, {"lives_alone": "true"}, {"has_children": "true"},
    ]
    for n, rules in enumerate(rule_sets):
        Circle.objects.create(name=f"规则{n}", rules=rules)
    everyone = [regular, dormant, returning, erased, never, unmeasured]
    tiers_recompute(member_ids=[member.pk for member in everyone], as_of=AS_OF)
    for circle in Circle.objects.filter(active=True):
        taken = set(circle_queryset(circle.rules, as_of=AS_OF).values_list("id", flat=True))
        assert set(CircleMembership.objects.filter(circle=circle).values_list("member_id", flat=True)) == taken, circle.rules
    assert {"规则1", "规则2"} <= names(unmeasured) and not names(erased)
    assert {"规则4", "规则17", "规则18", "规则20"} <= names(regular)


def test_the_nightly_run_takes_in_a_member_whose_churn_band_moved_and_nothing_else():
    steady, moved = MemberFactory(), MemberFactory()
    for member in (steady, moved):
        orders(member, count=3, total="300", last_days_ago=3, spread_days=10)  # fully alive on both days
    tiers_recompute(as_of=AS_OF)
    band = MemberMetrics.objects.get(member=moved).risk_band
    MemberMetrics.objects.filter(member=moved).update(risk_band="high" if band != "high" else "low")  # what today's scores no longer say
    scope = nightly_scope(AS_OF + dt.timedelta(days=1))
    assert scope.members == [moved.pk] and not (scope.lines or scope.trend or scope.events)
    tiers_recompute_nightly(as_of=AS_OF + dt.timedelta(days=1))
    assert MemberMetrics.objects.get(member=moved).risk_band == band


def test_with_a_fitted_model_the_nightly_run_takes_a_member_in_on_the_days_his_band_moves_and_on_no_other():
    """The band moves as days pass without an order; the run that scored a member stored the day,
    and each night takes in by index whoever's day has come, instead of scoring everyone again."""
    from segments.models import ChurnFit
    from segments.recompute.nightly import _risk_band_movers

    fit = ChurnFit.objects.create(as_of=AS_OF, model="mbgnbd", time_unit="week", n_members=1000, r=1.0, alpha=0.5, a=0.8, b=1.2, log_likelihood=-1.0)
    fading, gone = MemberFactory(), MemberFactory()
    orders(fading, count=3, total="300", last_days_ago=3, spread_days=5)  # x 2, t_x 10, T 13 days: P(alive) 0.69, low
    orders(gone, count=1, total="100", last_days_ago=200)  # P(alive) 0.02: high, and it stays there
    tiers_recompute(as_of=AS_OF)
    assert MemberMetrics.objects.get(member=gone).band_moves_on is None
    taken, bands = [], [MemberMetrics.objects.get(member=fading).risk_band]
    for n in range(1, 16):
        day = AS_OF + dt.timedelta(days=n)
        scope = nightly_scope(day)
        assert gone.pk not in scope.members
        taken.append(fading.pk in scope.members)
        tiers_recompute_nightly(as_of=day)
        assert _risk_band_movers(day, fit) == [], day  # every stored band is the band scored today
        bands.append(MemberMetrics.objects.get(member=fading).risk_band)
    moves = [bands[n + 1] != bands[n] for n in range(15)]
    assert bands[0] == "low" and bands[-1] == "high" and sum(moves) == 2
    assert taken == moves  # in scope on the two days his band moved, and on no other


def test_a_churn_fit_stored_after_the_last_run_makes_the_next_nightly_run_score_everyone():
    from segments.models import ChurnFit

    member = MemberFactory()
    orders(member, count=3, total="300", last_days_ago=3)
    tiers_recompute(as_of=AS_OF)
    assert nightly_scope(AS_OF + dt.timedelta(days=1)) is not None
    ChurnFit.objects.create(as_of=AS_OF, model="mbgnbd", time_unit="week", n_members=1000, r=1.0, alpha=0.5, a=0.8, b=1.2, log_likelihood=-1.0)
    assert nightly_scope(AS_OF + dt.timedelta(days=1)) is None
    run = tiers_recompute_nightly(as_of=AS_OF + dt.timedelta(days=1))
    assert run.full and MemberMetrics.objects.get(member=member).band_moves_on is not None  # scored by the new fit


def test_the_nightly_run_counts_an_order_recorded_before_the_last_run_but_dated_after_it():
    """A pre-order for the next day, imported before the run: on that run's day it lies
    ahead of the window; the next night it is in it, though it is not a new order then."""
    member = MemberFactory()
    orders(member, count=2, total="200", last_days_ago=5)
    OrderFactory(member=member, amount=Decimal("300"), ordered_at=dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(9), tzinfo=SHANGHAI))
    tiers_recompute(as_of=AS_OF)
    assert MemberMetrics.objects.get(member=member).orders_365 == 2
    scope = nightly_scope(AS_OF + dt.timedelta(days=1))
    assert member.pk in scope.lines
    tiers_recompute_nightly(as_of=AS_OF + dt.timedelta(days=1))
    assert (MemberMetrics.objects.get(member=member).orders_365, MemberMetrics.objects.get(member=member).spend_365) == (3, Decimal("500.00"))


def test_an_old_order_refunded_without_its_task_reaches_the_next_nightly_run(tmp_path):
    """A refund of an old order (a file, the API or the admin) whose per-member task was
    lost: the nightly run reads that member again whole, as a full run would."""
    from crm.importing.engine import run_import
    from crm.importing.specs import SPECS
    from tests.crm.factories import CategoryFactory, ProductFactory

    fruit, eggs, greens = (ProductFactory(category=CategoryFactory(name=name)) for name in ("水果", "蛋品", "蔬菜"))
    refunding = MemberFactory()
    big = _basket(refunding, 100, {fruit: "1500"})
    _basket(refunding, 20, {eggs: "200", greens: "50"})
    _basket(refunding, 40, {eggs: "200"})
    tiers_recompute(as_of=AS_OF)
    before = MemberMetrics.objects.get(member=refunding)
    assert (before.spend_365, before.favourite_category_id, before.tier.code) == (Decimal("1950"), fruit.category_id, "B")
    assert big.changed_at is None
    path = tmp_path / "refund.csv"
    path.write_text(f"order_no,member_external_id,ordered_at,amount,status\n{big.order_no},{refunding.external_id},"
                    f"{big.ordered_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S},1500,refunded\n", encoding="utf-8")
    assert run_import(SPECS["orders"], path, mode="all").updated == 1  # the engine alone: no task scheduled
    big.refresh_from_db()
    assert big.changed_at is not None
    next_day = AS_OF + dt.timedelta(days=1)
    assert refunding.pk in nightly_scope(next_day).whole
    tiers_recompute_nightly(as_of=next_day)
    fields = ["member_id", "orders_365", "spend_365", "refund_rate", "favourite_category_id", "second_category_id", "tier_id", "lines_value_cents"]
    nightly = sorted(MemberMetrics.objects.values_list(*fields))
    after = MemberMetrics.objects.get(member=refunding)
    assert (after.spend_365, after.favourite_category_id, after.tier.code) == (Decimal("450"), eggs.category_id, "C")
    tiers_recompute(as_of=next_day)
    assert nightly == sorted(MemberMetrics.objects.values_list(*fields))


def test_lines_that_come_or_change_after_a_run_read_their_order_reach_the_next_nightly_run(tmp_path):
    """Order lines whose import task was lost: a lines file a day after its orders (lines new to
    an order the last run read) and a corrected lines file (a line's values change). The nightly
    run reads those members again whole, as a full run would."""
    from crm.importing.engine import run_import
    from crm.importing.specs import SPECS
    from tests.crm.factories import CategoryFactory, ProductFactory

    fruit, eggs = (ProductFactory(category=CategoryFactory(name=name)) for name in ("水果", "蛋品"))
    late, corrected = MemberFactory(), MemberFactory()
    _basket(corrected, 10, {fruit: "100"})
    _basket(corrected, 12, {eggs: "60"})
    bare = _basket(late, 5, {}, order_amount="300")  # its lines come the next day
    _basket(late, 20, {eggs: "40"})
    tiers_recompute(as_of=AS_OF)
    assert MemberMetrics.objects.get(member=late).favourite_category_id == eggs.category_id
    assert MemberMetrics.objects.get(member=corrected).favourite_category_id == fruit.category_id

    path = tmp_path / "lines.csv"
    fix = Order.objects.get(member=corrected, ordered_at__date__lt=AS_OF - dt.timedelta(days=11))
    path.write_text(f"order_no,sku,quantity,unit_price\n{bare.order_no},{fruit.sku},1,300\n{fix.order_no},{eggs.sku},3,60\n", encoding="utf-8")
    outcome = run_import(SPECS["order_lines"], path, mode="all")  # the engine alone: no task scheduled
    assert (outcome.created, outcome.updated) == (1, 1)
    next_day = AS_OF + dt.timedelta(days=1)
    assert {late.pk, corrected.pk} <= nightly_scope(next_day).whole
    tiers_recompute_nightly(as_of=next_day)
    assert MemberMetrics.objects.get(member=late).favourite_category_id == fruit.category_id
    assert MemberMetrics.objects.get(member=corrected).favourite_category_id == eggs.category_id
    nightly = sorted(MemberMetrics.objects.values_list(*LINE_FIELDS))
    tiers_recompute(as_of=next_day)
    assert nightly == sorted(MemberMetrics.objects.values_list(*LINE_FIELDS))
    run_import(SPECS["order_lines"], path, mode="all")  # the same file again changes nothing
    assert nightly_scope(next_day + dt.timedelta(days=1)).whole == set()


def test_an_order_saved_again_records_its_change_a_new_one_does_not():
    order = OrderFactory()
    assert order.changed_at is None
    order.status = OrderStatus.REFUNDED
    order.save(update_fields=["status"])
    order.refresh_from_db()
    assert order.changed_at is not None
