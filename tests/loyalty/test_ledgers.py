"""Growth value and points as DOMAIN.md section 8 defines them, from orders,
events and registrations: awarded once, reversed by a refund, the first-order
award passing to the next paid order, pending for the return window and
expiring at the end of the following year; every balance equal to its ledger."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django.db.models import Sum

from crm.models import EngagementEvent, Order, OrderStatus
from loyalty import services
from loyalty.awards import _decisions, growth_targets, points_targets
from loyalty.balances import balances_differing
from loyalty.exports import as_of_values
from segments.days import local_midnight
from loyalty.models import Balance, EarningRule, GrowthEntry, LoyaltySettings, PointsEntry, Right, TierPoints
from segments.models import Tier
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def balance(member) -> Balance:
    return Balance.objects.get(member=member)


def assert_ledgers_agree():
    with connection.cursor() as cursor:
        assert balances_differing(cursor) == []


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_registration_orders_and_events_earn_the_default_amounts(frozen):
    member = MemberFactory(registered_at=at(2025, 1, 1, 10))
    OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("88.90"))
    OrderFactory(member=member, ordered_at=at(2026, 4, 1, 9), amount=Decimal("120.00"))
    OrderFactory(member=member, ordered_at=at(2026, 5, 1, 9), amount=Decimal("0"))  # 0元购: growth, no points
    EngagementEvent.objects.create(member=member, kind="share", occurred_at=at(2026, 5, 2, 9), count=2)
    EngagementEvent.objects.create(member=member, kind="ugc", occurred_at=at(2026, 5, 3, 9), count=1)
    EngagementEvent.objects.create(member=member, kind="invite", occurred_at=at(2026, 5, 4, 9), count=5)  # earns nothing

    services.ledgers_settle()

    assert balance(member).growth == 10 + 50 + 100 + 100 + 2 * 30 + 200
    assert balance(member).points == 88 + 120
    assert balance(member).pending == 0 and balance(member).available == 208
    assert_ledgers_agree()


def test_every_award_happens_once_whatever_runs_again(frozen):
    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("50"))
    services.ledgers_settle()
    services.ledgers_settle(member_ids=[member.pk])
    services.ledgers_settle_nightly()
    services.ledgers_settle()
    assert GrowthEntry.objects.filter(member=member).count() == 2  # registration, first order
    assert PointsEntry.objects.filter(member=member).count() == 1
    assert balance(member).growth == 60 and balance(member).points == 50


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan; PostgreSQL hash-joins the FULL JOIN")
@pytest.mark.parametrize("scoped", [False, True])
def test_on_sqlite_a_settle_looks_up_what_is_held_through_an_index_not_a_scan_per_source(frozen, scoped):
    """A second full settle of 3,000 demo members took over ten minutes on the embedded default:
    SQLite planned the FULL JOIN of what is earned and what is held as a nested loop that scanned
    every held source for every earned one. Every join there must be a lookup."""
    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("50"))
    services.ledgers_settle()
    with connection.cursor() as cursor:
        if scoped:
            services._scope_create(cursor, [member.pk])
        for ledger, (targets, params) in (("growth", growth_targets(scoped)), ("points", points_targets(scoped, LoyaltySettings.current()))):
            sql, more = _decisions(ledger, targets, scoped, False, timezone.now())
            cursor.execute("EXPLAIN QUERY PLAN " + sql, [*params, *more])
            steps = [row[-1] for row in cursor.fetchall()]
            joins = [step for step in steps if step.startswith(("SCAN h", "SCAN t", "SEARCH h", "SEARCH t"))]
            assert not [step for step in joins if "LEFT-JOIN" in step and not step.startswith("SEARCH")], steps
            assert len(joins) == 4, steps  # each side of the two LEFT JOINs: nothing left to a RIGHT JOIN's scan


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL's autovacuum gathers the statistics")
def test_on_sqlite_a_full_run_leaves_the_planner_statistics_of_what_it_wrote(frozen):
    """Without them SQLite read the points ledger's admin list (newest first, 50 rows) of 20,000
    members by scanning every member and sorting all their entries: 0.7 s instead of 0.5 ms."""
    from segments.services import tiers_recompute

    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("50"))

    def analyzed() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if not cursor.fetchall():
                return set()
            cursor.execute("SELECT DISTINCT tbl FROM sqlite_stat1")
            return {row[0] for row in cursor.fetchall()}

    services.ledgers_settle(member_ids=[member.pk])  # one member's settle leaves the statistics alone
    assert "loyalty_pointsentry" not in analyzed()
    services.ledgers_settle()
    tiers_recompute()
    assert {"loyalty_growthentry", "loyalty_pointsentry", "loyalty_balance", "segments_membermetrics"} <= analyzed()


def test_a_refund_reverses_and_the_next_paid_order_takes_over_the_first_order_award(frozen):
    member = MemberFactory()
    first = OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("30"))
    OrderFactory(member=member, ordered_at=at(2026, 4, 1, 9), amount=Decimal("40"))
    services.ledgers_settle()
    assert balance(member).growth == 10 + 50 + 100

    first.status = OrderStatus.REFUNDED
    first.save()
    services.ledgers_settle(member_ids=[member.pk])

    assert balance(member).growth == 10 + 50  # the April order is now the first
    assert balance(member).points == 40
    # Nothing was changed or deleted: the ledger records the differences.
    rules = sorted(GrowthEntry.objects.filter(member=member).values_list("rule", "amount"))
    assert rules == [("first_order", -50), ("first_order", 50), ("first_order", 50), ("register", 10), ("repeat_order", -100), ("repeat_order", 100)]
    assert_ledgers_agree()


def test_the_nightly_settle_reverses_an_old_order_refunded_whose_task_was_lost(frozen):
    member = MemberFactory()
    first = OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("30"))
    OrderFactory(member=member, ordered_at=at(2026, 4, 1, 9), amount=Decimal("40"))
    services.ledgers_settle()
    first.status = OrderStatus.REFUNDED
    first.save()  # its per-member task runs after the commit, which this test never makes: lost
    assert balance(member).points == 70
    services.ledgers_settle_nightly()
    assert (balance(member).growth, balance(member).points) == (10 + 50, 40)
    assert_ledgers_agree()


def test_the_nightly_settle_takes_back_what_a_deleted_order_earned_whose_task_was_lost(frozen):
    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("30"))
    kept = OrderFactory(member=member, ordered_at=at(2026, 4, 1, 9), amount=Decimal("40"))
    services.ledgers_settle()
    Order.objects.filter(member=member).exclude(pk=kept.pk).delete()  # the admin's bulk delete; its task lost
    assert balance(member).points == 70
    services.ledgers_settle_nightly()
    # The remaining order takes over the first-order award, and the deleted one's points are gone.
    assert (balance(member).growth, balance(member).points) == (10 + 50, 40)
    assert_ledgers_agree()


def move(order, to):
    """The order given to another member, as the admin's form saves it (its per-member task never runs here)."""
    order.refresh_from_db()
    order.member = to
    order.save()


def test_the_nightly_settle_moves_an_orders_awards_to_its_new_member_whose_task_was_lost(frozen):
    first, second = MemberFactory(), MemberFactory()
    order = OrderFactory(member=first, ordered_at=at(2026, 3, 1, 9), amount=Decimal("30"))
    services.ledgers_settle()
    move(order, second)
    services.ledgers_settle_nightly()  # its scope: the changed order's new member alone
    assert (balance(first).growth, balance(first).points) == (10, 0)
    assert (balance(second).growth, balance(second).points) == (10 + 50, 30)
    services.ledgers_settle()  # and a full run after it finds nothing left to write
    assert (balance(first).growth, balance(second).growth) == (10, 60)
    assert_ledgers_agree()


def test_a_moved_order_refunded_later_is_reversed_for_the_member_who_holds_it(frozen):
    second, first = MemberFactory(), MemberFactory()  # the order moves to the member with the smaller id
    order = OrderFactory(member=first, ordered_at=at(2026, 3, 1, 9), amount=Decimal("30"))
    services.ledgers_settle()
    move(order, second)
    services.ledgers_settle(member_ids=[second.pk])  # a batch of the import's settle without the old member
    order.status = OrderStatus.REFUNDED
    order.save()
    services.ledgers_settle(member_ids=[second.pk])
    assert [(b.member_id, b.growth, b.points) for b in Balance.objects.order_by("member_id")] == [(second.pk, 10, 0), (first.pk, 10, 0)]
    assert_ledgers_agree()


def test_an_order_moved_while_refunded_and_paid_again_is_awarded_once_to_its_new_member(frozen):
    first, second, third = MemberFactory(), MemberFactory(), MemberFactory()
    order = OrderFactory(member=first, ordered_at=at(2026, 3, 1, 9), amount=Decimal("30"))
    services.ledgers_settle()
    order.status = OrderStatus.REFUNDED
    order.save()
    services.ledgers_settle_nightly()
    move(order, second)
    move(order, third)
    order.status = OrderStatus.PAID
    order.save()
    services.ledgers_settle_nightly()
    assert [Balance.objects.get(member=m).growth for m in (first, second, third)] == [10, 10, 60]
    assert GrowthEntry.objects.filter(source_kind="order", source_id=order.pk, amount__gt=0).count() == 2  # March, and now
    assert_ledgers_agree()


def test_points_are_pending_for_the_return_window_and_expire_at_the_end_of_the_next_year(frozen):
    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2026, 11, 15, 23, 30), amount=Decimal("99.99"))  # local date 15 Nov
    OrderFactory(member=member, ordered_at=at(2025, 12, 31, 23, 59), amount=Decimal("10"))  # earned in 2025
    services.ledgers_settle()
    entry = PointsEntry.objects.get(member=member, amount=99)
    assert entry.available_at == at(2026, 11, 22, 0, 0)
    assert entry.expires_at == at(2028, 1, 1, 0, 0)
    assert PointsEntry.objects.get(member=member, amount=10).expires_at == at(2027, 1, 1, 0, 0)
    assert (balance(member).pending, balance(member).available) == (99, 10)

    frozen.move_to(at(2026, 11, 22, 0, 0, 1))
    services.ledgers_settle_nightly()
    assert (balance(member).pending, balance(member).available) == (0, 109)
    # December: the 2025 points enter the 30-day window; on 1 January 2027 they expire.
    frozen.move_to(at(2026, 12, 5, 3, 40))
    services.ledgers_settle_nightly()
    assert balance(member).expiring == 10
    frozen.move_to(at(2027, 1, 1, 0, 10))
    assert services.points_expire() == 1
    assert services.points_expire() == 0  # once
    assert (balance(member).points, balance(member).expiring) == (99, 0)
    assert_ledgers_agree()


def test_spent_points_are_taken_from_the_oldest_lots_before_they_expire(frozen):
    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2025, 6, 1, 9), amount=Decimal("300"))
    OrderFactory(member=member, ordered_at=at(2026, 6, 1, 9), amount=Decimal("400"))
    services.ledgers_settle()
    free_shipping = Right.objects.get(name="免运费")  # 200 points, a C right
    services.points_redeem(member=member, right=free_shipping, key="r-1")
    frozen.move_to(at(2027, 1, 1, 0, 10))
    services.points_expire()
    # 300 earned in 2025, 200 of them spent: 100 expire; the 400 of 2026 stay.
    assert balance(member).points == 400
    assert_ledgers_agree()


def test_a_tier_multiplier_applies_at_the_orders_time(frozen):
    member = MemberFactory()
    gold = Tier.objects.get(code="A")
    TierPoints.objects.filter(tier=gold).update(multiplier=Decimal("1.5"))
    from segments.models import TierChange

    TierChange.objects.create(member=member, to_tier=gold, at=at(2026, 5, 1, 0), reason="manual")
    OrderFactory(member=member, ordered_at=at(2026, 4, 1, 9), amount=Decimal("101.50"))  # before: ×1
    OrderFactory(member=member, ordered_at=at(2026, 6, 1, 9), amount=Decimal("101.50"))  # gold: 101 × 1.5 = 151.5
    services.ledgers_settle()
    assert sorted(PointsEntry.objects.filter(member=member).values_list("amount", flat=True)) == [101, 151]


def test_a_rule_change_applies_from_its_date_and_a_reaward_is_explicit(frozen):
    member = MemberFactory()
    OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("10"))
    OrderFactory(member=member, ordered_at=at(2026, 4, 1, 9), amount=Decimal("10"))
    services.ledgers_settle()
    EarningRule.objects.create(code="repeat_order", amount=150, effective_from=dt.date(2026, 6, 1))
    OrderFactory(member=member, ordered_at=at(2026, 7, 1, 9), amount=Decimal("10"))
    services.ledgers_settle(member_ids=[member.pk])
    assert balance(member).growth == 10 + 50 + 100 + 150  # April keeps its 100

    EarningRule.objects.filter(code="repeat_order", effective_from=dt.date(1970, 1, 1)).update(amount=120)
    services.ledgers_settle()
    assert balance(member).growth == 310  # editing a rule rewrites nothing by itself
    preview = services.reprice_preview()
    assert (preview["growth"].members, preview["growth"].amount) == (1, 20)
    assert balance(member).growth == 310  # a preview writes nothing
    services.ledgers_reprice()
    assert balance(member).growth == 330
    assert_ledgers_agree()


def test_a_corrected_order_amount_or_event_count_moves_its_points_and_growth_value_by_the_difference(frozen):
    """A re-import or an edit that corrects what an order cost or how often a member shared:
    the source is evaluated anew and the ledger records the difference (a rule edited in
    place still rewrites nothing by itself, above)."""
    member = MemberFactory()
    order = OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("300"))
    event = EngagementEvent.objects.create(member=member, kind="share", occurred_at=at(2026, 3, 2, 9), count=2)
    services.ledgers_settle()
    assert (balance(member).growth, balance(member).points) == (10 + 50 + 2 * 30, 300)
    frozen.shift(dt.timedelta(hours=1))
    order.refresh_from_db()
    order.amount = Decimal("250.50")  # a partial refund booked as a corrected amount
    order.save()
    event.count = 3
    event.save()
    frozen.shift(dt.timedelta(seconds=1))  # the settle task runs after the commit
    services.ledgers_settle(member_ids=[member.pk])
    assert (balance(member).growth, balance(member).points) == (10 + 50 + 3 * 30, 250)
    assert list(PointsEntry.objects.filter(source_id=order.pk).order_by("seq").values_list("amount", flat=True)) == [300, -50]
    services.ledgers_settle()  # nothing left to write
    assert PointsEntry.objects.filter(source_id=order.pk).count() == 2
    frozen.shift(dt.timedelta(hours=1))
    EarningRule.objects.filter(code="share").update(amount=40)  # an edit in place: history stays
    services.ledgers_settle(member_ids=[member.pk])
    assert balance(member).growth == 10 + 50 + 3 * 30
    assert_ledgers_agree()


def test_an_amount_corrected_while_a_settle_ran_is_settled_by_the_next_one(frozen):
    """An edit stamps its changed_at when it saves and commits later. A settle that wrote the
    order's entry between the two recorded a time after that changed_at, and the edit still
    needs settling: the next settle writes the difference, not a rule's change it leaves alone."""
    member = MemberFactory()
    order = OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("300"))

    def edit_committed_after_the_settle(amount: Decimal) -> None:
        # Saved a second before the settle before it read the order, committed after.
        Order.objects.filter(pk=order.pk).update(amount=amount, changed_at=timezone.now() - dt.timedelta(seconds=1))
        frozen.shift(dt.timedelta(seconds=2))  # the settle task the edit's commit queued

    services.ledgers_settle()  # the first award: 300
    edit_committed_after_the_settle(Decimal("250.50"))
    services.ledgers_settle(member_ids=[member.pk])  # the difference; a second edit was open meanwhile
    assert balance(member).points == 250
    edit_committed_after_the_settle(Decimal("200"))
    services.ledgers_settle(member_ids=[member.pk])
    assert balance(member).points == 200
    assert list(PointsEntry.objects.filter(source_id=order.pk).order_by("seq").values_list("amount", flat=True)) == [300, -50, -50]
    services.ledgers_settle()  # nothing left to write
    assert PointsEntry.objects.filter(source_id=order.pk).count() == 3
    assert_ledgers_agree()


def test_entries_written_before_they_recorded_the_source_version_are_compared_by_time(frozen):
    """Ledgers from before the upgrade hold entries without a source version: a rule edited in
    place still rewrites nothing for them, and an order corrected after them is settled."""
    member = MemberFactory()
    order = OrderFactory(member=member, ordered_at=at(2026, 3, 1, 9), amount=Decimal("300"))
    changed = OrderFactory(member=member, ordered_at=at(2026, 3, 2, 9), amount=Decimal("10"))
    changed.save()  # changed before its award
    services.ledgers_settle()
    assert GrowthEntry.objects.filter(source_version__isnull=False).exists()
    GrowthEntry.objects.update(source_version=None)
    PointsEntry.objects.update(source_version=None)
    frozen.shift(dt.timedelta(hours=1))
    EarningRule.objects.filter(code="repeat_order").update(amount=80)  # an edit in place: history stays
    services.ledgers_settle()
    assert (balance(member).growth, balance(member).points) == (10 + 50 + 100, 310)
    order.refresh_from_db()
    order.amount = Decimal("100")
    order.save()
    frozen.shift(dt.timedelta(seconds=1))
    services.ledgers_settle(member_ids=[member.pk])
    assert (balance(member).growth, balance(member).points) == (10 + 50 + 100, 110)
    assert_ledgers_agree()


@pytest.mark.django_db(transaction=True)
def test_an_edit_committed_while_a_settle_runs_is_not_lost(shipped_defaults):
    """The same, with real transactions: an order just imported (not settled yet) is edited, and
    while the edit's transaction is open a full settle awards the order's amount as committed;
    once the edit commits, its own task settles the member, and the points follow the edit."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    member = MemberFactory()
    # Imported: written in bulk, without the signal that settles one saved order.
    order = Order.objects.bulk_create([OrderFactory.build(member=member, ordered_at=timezone.now() - dt.timedelta(days=30), amount=Decimal("300"))])[0]
    saved, settled = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def edit() -> None:
        try:
            with transaction.atomic():
                edited = Order.objects.get(pk=order.pk)
                edited.amount = Decimal("120")
                edited.save()
                saved.set()
                assert settled.wait(60)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)
        finally:
            saved.set()
            connection.close()

    editor = threading.Thread(target=edit)
    editor.start()
    assert saved.wait(60)
    services.ledgers_settle()  # sees the order as committed: 300
    assert balance(member).points == 300
    settled.set()
    editor.join(60)
    assert failures == []
    services.ledgers_settle(member_ids=[member.pk])  # the settle the edit's commit queued
    assert balance(member).points == 120
    assert list(PointsEntry.objects.filter(source_id=order.pk).order_by("seq").values_list("amount", flat=True)) == [300, -180]


def test_loyalty_check_names_a_member_whose_balance_differs(frozen, capsys):
    member, other = MemberFactory(external_id="M-OK"), MemberFactory(external_id="M-BAD")
    OrderFactory(member=member, amount=Decimal("10"))
    OrderFactory(member=other, amount=Decimal("10"))
    services.ledgers_settle()
    call_command("loyalty_check")
    Balance.objects.filter(member=other).update(points=999)
    with pytest.raises(SystemExit) as exit_:
        call_command("loyalty_check")
    assert exit_.value.code != 0
    out = capsys.readouterr()
    assert "M-BAD" in out.out + out.err and "M-OK" not in out.out + out.err


def test_loyalty_check_names_a_balance_that_shows_points_pending_longer_than_the_ledger(frozen, capsys):
    """A stored pending_until later than when the ledger's pending points become available would
    show them as pending after that day; an empty one (written before the column) is read by the
    midnight instead and is not a difference."""
    member = MemberFactory(external_id="M-LATE")
    OrderFactory(member=member, amount=Decimal("10"), ordered_at=NOW - dt.timedelta(days=2))
    services.ledgers_settle()
    stored = Balance.objects.get(member=member)
    assert (stored.pending, stored.pending_until) == (10, local_midnight(dt.date(2026, 11, 25)))
    Balance.objects.filter(member=member).update(pending_until=None)
    call_command("loyalty_check")
    Balance.objects.filter(member=member).update(pending_until=stored.pending_until + dt.timedelta(days=1))
    with pytest.raises(SystemExit):
        call_command("loyalty_check")
    assert "M-LATE: pending_until stored" in capsys.readouterr().err


def test_the_metrics_export_gives_growth_and_points_as_of_its_day(frozen, tmp_path):
    import csv

    from segments.services import tiers_recompute

    member = MemberFactory(external_id="M-EXP", registered_at=at(2025, 1, 1, 10))
    OrderFactory(member=member, ordered_at=at(2025, 6, 1, 9), amount=Decimal("80"))  # 2025 points expire 1 Jan 2027
    OrderFactory(member=member, ordered_at=at(2026, 11, 10, 23, 30), amount=Decimal("30.50"))  # available from 17 Nov
    OrderFactory(member=member, ordered_at=at(2026, 11, 18, 9), amount=Decimal("20"))  # pending until 25 Nov
    tiers_recompute()
    services.ledgers_settle()

    def exported(day: str) -> dict:
        path = tmp_path / f"{day}.csv"
        call_command("export_member_metrics", "--as-of", day, str(path))
        return next(row for row in csv.DictReader(path.open(encoding="utf-8")) if row["external_id"] == "M-EXP")

    row = exported("2026-11-16")
    assert (row["growth_value"], row["points_available"], row["points_pending"]) == ("160", "80", "30")
    row = exported("2026-11-17")
    assert (row["growth_value"], row["points_available"], row["points_pending"]) == ("160", "110", "0")
    row = exported("2026-11-20")
    assert (row["growth_value"], row["points_available"], row["points_pending"]) == ("260", "110", "20")
    row = exported("2025-05-31")  # before any order: the registration only
    assert (row["growth_value"], row["points_available"], row["points_pending"]) == ("10", "0", "0")
    # The 2025 points are gone on 1 January 2027, whether or not the expiry has run yet.
    assert exported("2026-12-31")["points_available"] == "130"
    assert exported("2027-01-01")["points_available"] == "50"


def test_a_corrected_order_or_event_time_moves_its_awards_to_the_new_day(frozen, tmp_path):
    """An order re-imported with its date corrected (or an event's time fixed in the admin)
    earns on its new day: the ledger reverses the award at the old business time and awards
    again at the new one, so points are pending and expire by the new date, and a sum "as of
    day D" follows the order as it stands. A registration time filled in later moves its award too."""
    import csv

    from segments.services import tiers_recompute

    member = MemberFactory(external_id="M-DATE", registered_at=None)
    order = OrderFactory(member=member, ordered_at=at(2025, 12, 30, 9), amount=Decimal("100"))
    event = EngagementEvent.objects.create(member=member, kind="share", occurred_at=at(2025, 12, 30, 10), count=1)
    services.ledgers_settle()
    assert PointsEntry.objects.get(source_id=order.pk).expires_at == at(2027, 1, 1, 0)

    frozen.shift(dt.timedelta(hours=1))
    order.refresh_from_db()
    order.ordered_at = at(2026, 11, 18, 9)  # the shop's clock was wrong: the order is recent, and pending
    order.save()
    event.occurred_at = at(2026, 11, 18, 10)
    event.save()
    member.registered_at = at(2025, 6, 1, 9)
    member.save()
    frozen.shift(dt.timedelta(seconds=1))
    services.ledgers_settle(member_ids=[member.pk])

    held = PointsEntry.objects.filter(source_id=order.pk, rule="order_points")
    assert held.filter(expires_at=at(2028, 1, 1, 0)).aggregate(s=Sum("amount"))["s"] == 100
    assert held.filter(expires_at=at(2027, 1, 1, 0)).aggregate(s=Sum("amount"))["s"] == 0
    assert (balance(member).points, balance(member).pending) == (100, 100)  # available from 25 Nov
    assert balance(member).growth == 10 + 50 + 30

    def exported(day: str) -> dict:
        path = tmp_path / f"{day}.csv"
        call_command("export_member_metrics", "--as-of", day, str(path))
        return next(row for row in csv.DictReader(path.open(encoding="utf-8")) if row["external_id"] == "M-DATE")

    tiers_recompute()

    row = exported("2026-01-15")  # registered, but the order and the share come later now
    assert (row["growth_value"], row["points_available"], row["points_pending"]) == ("10", "0", "0")
    row = exported("2026-11-19")
    assert (row["growth_value"], row["points_available"], row["points_pending"]) == ("90", "0", "100")

    entries = PointsEntry.objects.count() + GrowthEntry.objects.count()
    order.refresh_from_db()
    order.status = OrderStatus.REFUNDED  # a refund after the correction reverses on the new day
    order.save()
    frozen.shift(dt.timedelta(seconds=1))
    services.ledgers_settle(member_ids=[member.pk])
    assert PointsEntry.objects.count() + GrowthEntry.objects.count() == entries + 2
    assert held.filter(occurred_at=order.ordered_at).aggregate(s=Sum("amount"))["s"] == 0
    assert (balance(member).points, balance(member).growth) == (0, 10 + 30)
    services.ledgers_settle()  # nothing left to write
    assert PointsEntry.objects.count() + GrowthEntry.objects.count() == entries + 2
    assert_ledgers_agree()


def test_a_member_without_a_registration_time_is_registered_by_his_first_order_not_when_he_was_imported(frozen):
    """A shop's history imported today, its members without registration times: each was a member
    by his first order, so his growth value as of that order's day has the registration's 10 with the
    order's 50, not 50 alone with the 10 arriving on the day of the import. An earlier order found
    later moves it there."""
    member = MemberFactory(registered_at=None)
    OrderFactory(member=member, ordered_at=at(2025, 6, 1, 9), amount=Decimal("80"))
    quiet = MemberFactory(registered_at=None)  # no order: recorded today, registered today
    services.ledgers_settle()
    registration = GrowthEntry.objects.filter(rule="register", source_kind="registration")
    assert registration.get(source_id=member.pk).occurred_at == at(2025, 6, 1, 9)
    assert registration.get(source_id=quiet.pk).occurred_at == quiet.created_at
    assert as_of_values([member.pk], dt.date(2025, 6, 1))[member.pk][0] == 10 + 50
    OrderFactory(member=member, ordered_at=at(2025, 3, 1, 9), amount=Decimal("20"), status=OrderStatus.REFUNDED)
    services.ledgers_settle()
    assert as_of_values([member.pk], dt.date(2025, 3, 1))[member.pk][0] == 10
    assert balance(member).growth == 60
    assert_ledgers_agree()


def test_a_registration_time_filled_in_in_the_admin_moves_the_registration_award(admin_client, member_form_data, django_capture_on_commit_callbacks):
    """A member added by the shop before his registration time was known is registered "now";
    staff fill in the real time on his page and his growth value as of earlier days follows it."""
    from crm.models import Consent

    with django_capture_on_commit_callbacks(execute=True):
        member = MemberFactory(registered_at=None)
        consent = Consent.objects.create(member=member, channel="sms", granted=True, source="import")
    registration = GrowthEntry.objects.filter(rule="register", source_id=member.pk)
    assert registration.get().occurred_at == member.created_at
    data = member_form_data(member, consent, registered_at_0="2024-05-01", registered_at_1="09:30:00")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/crm/member/{member.pk}/change/", data)
    assert response.status_code == 302
    held = registration.values("occurred_at").annotate(total=Sum("amount")).filter(total__gt=0)
    assert [row["occurred_at"] for row in held] == [at(2024, 5, 1, 9, 30)] and balance(member).growth == 10
