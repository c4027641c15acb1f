"""Stage 1, scope: which members a run covers (seg_scope) and, for a nightly
run, what it must read again for each (seg_changed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from django.db.models import Exists, OuterRef, Q, QuerySet

from crm.bulkload import load_rows
from crm.models import Member, Order, OrderStatus
from segments.days import local_midnight
from segments.recompute.base import (
    READ_ALL,
    READ_STORED,
    READ_TREND,
    SCOPE,
    STORED,
    STORED_COLUMNS,
    Bounds,
    tables_analyze,
)


class NightlyScope(NamedTuple):
    """A nightly run's members and what it reads again of each (nightly.nightly_scope)."""

    members: list[int]
    lines: set[int]  # every order and order line (READ_ALL)
    trend: set[int]  # the 30- and 120-day order counts (READ_TREND)
    events: set[int]  # the events: their V score is computed again
    trend_only: frozenset[int] | set[int] = frozenset()  # in scope only for a trend count: dropped when the trend stays as it is
    base_as_of: dt.date | None = None  # the last nightly or full run the scope was worked out from
    base_max_order_id: int = 0  # and its order watermark
    whole: frozenset[int] | set[int] = frozenset()  # an order of theirs changed since (a refund, an edit): read whole, never by difference


def past_day_end(as_of: dt.date, today: dt.date) -> dt.datetime | None:
    """The end of a past as-of day, by which a run, its summary and an export count the members
    (members_by); None for today or later, when everyone counts."""
    return local_midnight(as_of + dt.timedelta(days=1)) if as_of < today else None


def members_by(until: dt.datetime) -> QuerySet:
    """The members there were by a past day's end: registered before it, with a paid order before
    it, or with no registration time known (nothing says they joined later). A run as of that day
    covers them only; the others had not joined."""
    paid_before = Order.objects.filter(member=OuterRef("pk"), status=OrderStatus.PAID, ordered_at__lt=until)
    return Member.objects.filter(Q(registered_at__lt=until) | Q(registered_at__isnull=True) | Exists(paid_before))


def scope_create(cursor, member_ids: Sequence[int] | None, nightly: NightlyScope | None = None, *, until: dt.datetime | None = None) -> None:
    """seg_scope holds the members of this run (everyone when member_ids is None)
    and what the run reads again for each (reads, events): everything, unless
    a nightly scope says less. A member without a metrics row yet is read whole.

    until (a run as of a past day: that day's end): everyone is only the members
    there were by then (members_by)."""
    cursor.execute(
        f"CREATE TEMP TABLE {SCOPE} (member_id bigint PRIMARY KEY, reads smallint NOT NULL, events smallint NOT NULL, trend_only smallint NOT NULL DEFAULT 0)"
    )
    if member_ids is None:
        if until is None:
            cursor.execute(f"INSERT INTO {SCOPE} (member_id, reads, events) SELECT id, {READ_ALL}, 1 FROM crm_member")  # nosec B608
        else:
            members, params = members_by(until).values("id").query.sql_with_params()
            cursor.execute(f"INSERT INTO {SCOPE} (member_id, reads, events) SELECT id, {READ_ALL}, 1 FROM ({members}) m", params)  # nosec B608
        tables_analyze(cursor, SCOPE)
        return
    members = set(member_ids)
    lines, trend, events = (members, set(), members) if nightly is None else (nightly.lines, nightly.trend, nightly.events)
    trend_only = frozenset() if nightly is None else nightly.trend_only

    def reads(member_id: int) -> int:
        return READ_ALL if member_id in lines else READ_TREND if member_id in trend else READ_STORED

    load_rows(
        SCOPE,
        ["member_id", "reads", "events", "trend_only"],
        ((member, reads(member), int(member in events), int(member in trend_only)) for member in sorted(members)),
    )
    tables_analyze(cursor, SCOPE)
    if nightly is None:  # every member read whole: the stages need nothing stored
        return
    # What the stages read of the stored metrics, in one pass over the table (each stage
    # reading it again scanned the million rows once more, a third of a second each).
    cursor.execute(
        f"CREATE TEMP TABLE {STORED} AS SELECT {', '.join(f'm.{name}' for name in STORED_COLUMNS)} "
        f"FROM segments_membermetrics m JOIN {SCOPE} s ON s.member_id = m.member_id"  # nosec B608 - names from code
    )
    cursor.execute(f"CREATE UNIQUE INDEX {STORED}_member ON {STORED} (member_id)")
    # A changed order's old values are in the stored sums: no difference can take them out.
    whole = sorted(nightly.whole)
    for start in range(0, len(whole), 5_000):
        part = whole[start : start + 5_000]
        cursor.execute(f"UPDATE {STORED} SET lines_value_cents = NULL WHERE member_id IN ({', '.join(['%s'] * len(part))})", part)  # nosec B608
    tables_analyze(cursor, STORED)
    cursor.execute(
        f"UPDATE {SCOPE} SET reads = {READ_ALL}, events = 1, trend_only = 0 WHERE (reads < {READ_ALL} OR events = 0) AND NOT EXISTS "
        f"(SELECT 1 FROM {STORED} m WHERE m.member_id = {SCOPE}.member_id)"  # nosec B608
    )


CHANGED = "seg_changed"


def changes_create(cursor, bounds: Bounds, since: NightlyScope | None, *, max_order_id: int) -> Bounds | None:
    """For a nightly run, seg_changed: the paid orders that changed what the
    stored order lines and habits of its members read whole were worked out
    from, since the last nightly or full run (its bounds are returned; None
    when the run does not go by difference). Each with a sign: -1 for an
    order that left the window (dated between the two window starts), +1 for
    one dated into it (between the two as-of dates), both among the orders the
    stored values cover (id up to lines_order_id), and +1 for a new order (an
    id above both the last run's watermark and lines_order_id, up to this
    run's), whatever its date. An order between the stored values and the
    last run would have brought the member into a run's scope, which wrote
    them again. The members taken (taken_sql) are those whose stored values
    are known and were not worked out ahead of that run; lines_stage and
    habits_stage read the others whole."""
    if since is None or since.base_as_of is None or since.base_as_of > bounds.as_of:
        return None
    before = Bounds(since.base_as_of)
    part = f"""SELECT o.member_id AS member_id, o.id AS order_id, {{sign}} AS sign, o.ordered_at AS ordered_at
        FROM crm_order o JOIN {SCOPE} s ON s.member_id = o.member_id JOIN {STORED} m ON m.member_id = o.member_id
        WHERE o.status = '{OrderStatus.PAID}' AND {{orders}} AND {taken_sql(before)}"""  # nosec B608 - names from code
    parts = [
        (-1, "o.ordered_at >= %s AND o.ordered_at < %s AND o.id <= m.lines_order_id", [before.window_start, bounds.window_start]),
        (1, "o.ordered_at >= %s AND o.ordered_at < %s AND o.id <= m.lines_order_id", [before.end, bounds.end]),
        (1, "o.id > %s AND o.id > m.lines_order_id AND o.id <= %s AND o.ordered_at < %s", [since.base_max_order_id, max_order_id, bounds.end]),
    ]
    cursor.execute(
        f"CREATE TEMP TABLE {CHANGED} AS {' UNION ALL '.join(part.format(sign=sign, orders=orders) for sign, orders, _params in parts)}",  # nosec B608
        [param for _sign, _orders, params in parts for param in params],
    )
    tables_analyze(cursor, CHANGED)
    return before


def taken_sql(base: Bounds) -> str:
    """Whether a run going by difference from base takes member s (the scope) with stored values m."""
    return f"s.reads = {READ_ALL} AND m.lines_value_cents IS NOT NULL AND m.lines_as_of <= '{base.as_of.isoformat()}'"
