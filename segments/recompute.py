"""The set-based recompute: aggregate queries into temporary tables, one tier
CASE built from the ladder rows, then one write of the metrics that touches
only changed rows (metrics_write), then the circles.

No per-member queries: a run for one member and a run for a million execute
the same statements, the scope table deciding which members they cover (a
full run writes the circles one by one). The only Python loops are over the few
promotion candidates that might need a review and over numpy arrays for the
churn scores.

A one-member run (after each order) is some forty short statements, so each
costs: a step drops the temporary tables it made, tiers_recompute drops the
shared ones, and a failed run's tables go with its rolled-back transaction,
so none is dropped "if exists" beforehand.

SQL here is assembled from table and column names and from the ladder's ids
(integers) defined in code, marked "nosec B608" for bandit; every value
travels as a query parameter."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models.expressions import RawSQL
from django.utils import timezone

from crm.bulkload import load_rows
from crm.models import OrderStatus
from segments import churn
from segments.circles import circle_queryset
from segments.days import local_midnight  # also segments.recompute.local_midnight for its callers
from segments.ladder import RFM, Rung, recency_days, tier_for
from segments.models import (
    ChurnFit,
    Circle,
    CircleMembership,
    ReviewStatus,
    RiskBand,
    SegmentSettings,
    TierReview,
)

TREND_RECENT_DAYS = 30
TREND_PRIOR_DAYS = 90
WINDOW_DAYS = 365
CHURN_HORIZON_DAYS = 30
SCOPE = "seg_scope"


@dataclass
class Bounds:
    """The as-of date's windows as UTC instants (local midnights)."""

    as_of: dt.date
    end: dt.datetime = field(init=False)  # exclusive: the first instant after the as-of date
    window_start: dt.datetime = field(init=False)
    recent_start: dt.datetime = field(init=False)
    prior_start: dt.datetime = field(init=False)

    def __post_init__(self) -> None:
        self.end = local_midnight(self.as_of + dt.timedelta(days=1))
        self.window_start = local_midnight(self.as_of - dt.timedelta(days=WINDOW_DAYS - 1))
        self.recent_start = local_midnight(self.as_of - dt.timedelta(days=TREND_RECENT_DAYS - 1))
        self.prior_start = local_midnight(self.as_of - dt.timedelta(days=TREND_RECENT_DAYS + TREND_PRIOR_DAYS - 1))

    def recency_start(self, days: int) -> dt.datetime:
        """Orders at or after this instant are at most `days` days old on the as-of date."""
        return local_midnight(self.as_of - dt.timedelta(days=days))


def _sql(postgres: str, sqlite: str) -> str:
    return postgres if connection.vendor == "postgresql" else sqlite


def _distinct() -> str:
    """NULL-safe inequality in this database's SQL."""
    return _sql("IS DISTINCT FROM", "IS NOT")


def _execute(cursor, sql: str, params: Sequence = ()) -> int:
    cursor.execute(sql, params)
    return cursor.rowcount


def _drop(cursor, *tables: str) -> None:
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _analyze(cursor, *tables: str) -> None:
    """Give PostgreSQL the row counts of freshly filled temporary tables. Without
    them it guesses about a thousand rows and, on a one-member run, joins the
    metrics table by a full scan."""
    if connection.vendor == "postgresql":
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


# What a run reads again for a member in its scope (seg_scope.reads).
READ_STORED = 0  # nothing: the stored aggregates, lines and habits stand (a recency or registration crossing, a pin, a churn band, events)
READ_TREND = 1  # the 30- and 120-day order counts: an order crossed a trend window's edge
READ_ALL = 2  # every order and order line: new orders, an order leaving the 365-day window, everyone in a full run


# A nightly run's copy of the stored metrics of its members (scope_create); other runs read the table itself.
STORED = "seg_stored"
STORED_COLUMNS = (
    "member_id", "tier_id", "first_order_at", "last_order_at", "orders_total", "orders_365", "spend_365", "max_order_365", "refund_rate",
    "orders_30d", "orders_prior_90d", "trend", "favourite_category_id", "second_category_id", "promo_share", "usual_order_hour", "repeat_days", "v_score",
    "lines_value_cents", "lines_promo_cents", "favourite_cents", "second_cents", "others_cents", "lines_as_of", "lines_order_id",
    "hour_orders", "next_hour_orders",
)


def _stored(stored: bool) -> str:
    """The table holding the stored metrics of the run's members: a nightly run's copy (stored), else the table itself."""
    return STORED if stored else "segments_membermetrics"


class NightlyScope(NamedTuple):
    """A nightly run's members and what it reads again of each (services.nightly_scope)."""

    members: list[int]
    lines: set[int]  # every order and order line (READ_ALL)
    trend: set[int]  # the 30- and 120-day order counts (READ_TREND)
    events: set[int]  # the events: their V score is computed again
    trend_only: frozenset[int] | set[int] = frozenset()  # in scope only for a trend count: dropped when the trend stays as it is
    base_as_of: dt.date | None = None  # the last nightly or full run the scope was worked out from
    base_max_order_id: int = 0  # and its order watermark
    whole: frozenset[int] | set[int] = frozenset()  # an order of theirs changed since (a refund, an edit): read whole, never by difference


def scope_create(cursor, member_ids: Sequence[int] | None, nightly: NightlyScope | None = None) -> None:
    """seg_scope holds the members of this run (everyone when member_ids is None)
    and what the run reads again for each (reads, events): everything, unless
    a nightly scope says less. A member without a metrics row yet is read whole."""
    cursor.execute(
        f"CREATE TEMP TABLE {SCOPE} (member_id bigint PRIMARY KEY, reads smallint NOT NULL, events smallint NOT NULL, trend_only smallint NOT NULL DEFAULT 0)"
    )
    if member_ids is None:
        cursor.execute(f"INSERT INTO {SCOPE} (member_id, reads, events) SELECT id, {READ_ALL}, 1 FROM crm_member")  # nosec B608
        _analyze(cursor, SCOPE)
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
    _analyze(cursor, SCOPE)
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
    _analyze(cursor, STORED)
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
    them again. The members taken (_taken) are those whose stored values
    are known and were not worked out ahead of that run; lines_stage and
    habits_stage read the others whole."""
    if since is None or since.base_as_of is None or since.base_as_of > bounds.as_of:
        return None
    before = Bounds(since.base_as_of)
    part = f"""SELECT o.member_id AS member_id, o.id AS order_id, {{sign}} AS sign, o.ordered_at AS ordered_at
        FROM crm_order o JOIN {SCOPE} s ON s.member_id = o.member_id JOIN {STORED} m ON m.member_id = o.member_id
        WHERE o.status = '{OrderStatus.PAID}' AND {{orders}} AND {_taken(before)}"""  # nosec B608 - names from code
    parts = [
        (-1, "o.ordered_at >= %s AND o.ordered_at < %s AND o.id <= m.lines_order_id", [before.window_start, bounds.window_start]),
        (1, "o.ordered_at >= %s AND o.ordered_at < %s AND o.id <= m.lines_order_id", [before.end, bounds.end]),
        (1, "o.id > %s AND o.id > m.lines_order_id AND o.id <= %s AND o.ordered_at < %s", [since.base_max_order_id, max_order_id, bounds.end]),
    ]
    cursor.execute(
        f"CREATE TEMP TABLE {CHANGED} AS {' UNION ALL '.join(part.format(sign=sign, orders=orders) for sign, orders, _params in parts)}",  # nosec B608
        [param for _sign, _orders, params in parts for param in params],
    )
    _analyze(cursor, CHANGED)
    return before


def _taken(base: Bounds) -> str:
    """Whether a run going by difference from base takes member s (the scope) with stored values m."""
    return f"s.reads = {READ_ALL} AND m.lines_value_cents IS NOT NULL AND m.lines_as_of <= '{base.as_of.isoformat()}'"


def _member_filter(full: bool, column: str = "member_id", *, only: str = "") -> str:
    """The scope's condition on a member column; only: a condition on the scope's rows (say, reads = 2)."""
    if full:
        return ""
    return f" AND {column} IN (SELECT member_id FROM {SCOPE}{f' WHERE {only}' if only else ''})"  # nosec B608


def _scoped_on_postgres(full: bool) -> bool:
    """A run of part of the members on PostgreSQL: the stages then read each
    member's orders through the (member, time) index, one LATERAL subquery per
    member. As joins, PostgreSQL scanned every order (and in the lines stage
    joined them with all order lines) before it took the scope's members."""
    return not full and connection.vendor == "postgresql"


def _stored_copy(cursor, table: str, columns: dict[str, str], stored: bool, skipped: str = f"s.reads < {READ_ALL}") -> None:
    """Add to a stage table the stored values of the members in scope that it skipped (stored: the run has such members)."""
    if not stored:
        return
    cursor.execute(
        f"INSERT INTO {table} (member_id, {', '.join(columns)}) "  # nosec B608 - names from code
        f"SELECT m.member_id, {', '.join(columns.values())} FROM {STORED} m "
        f"JOIN {SCOPE} s ON s.member_id = m.member_id AND {skipped}"
    )


def _cents(expression: str) -> str:
    """Money summed exactly in fen on both databases (SQLite stores decimals as REAL)."""
    return _sql(f"CAST(SUM({expression}) * 100 AS BIGINT)", f"SUM(CAST(ROUND(({expression}) * 100) AS INTEGER))")


def stored_cents(column: str) -> str:
    """A stored amount in fen."""
    return _sql(f"CAST({column} * 100 AS BIGINT)", f"CAST(ROUND({column} * 100) AS INTEGER)")


def _local_hour() -> str:
    return _sql(
        f"date_part('hour', o.ordered_at AT TIME ZONE '{settings.TIME_ZONE}')::int",  # not EXTRACT: its numeric cost 0.4 s per 15M orders
        "CAST(strftime('%%H', o.ordered_at, '+8 hours') AS INTEGER)",
    )


def _local_day() -> str:
    return _sql(f"(o.ordered_at AT TIME ZONE '{settings.TIME_ZONE}')::date", "date(o.ordered_at, '+8 hours')")


def tier_case_sql(ladder: Sequence[Rung], bounds: Bounds, *, last: str, orders: str, spend_cents: str) -> tuple[str, list]:
    """The ladder as one SQL CASE giving the tier id, the same decision as ladder.tier_for."""
    cases = []
    params: list = []
    for rung in ladder:
        if rung.is_catch_all:
            continue
        conditions = [f"{last} IS NOT NULL"]
        if rung.max_recency_days is not None:
            conditions.append(f"{last} >= %s")
            params.append(bounds.recency_start(rung.max_recency_days))
        if rung.min_orders is not None:
            conditions.append(f"{orders} >= %s")
            params.append(rung.min_orders)
        if rung.min_spend is not None:
            conditions.append(f"{spend_cents} >= %s")
            params.append(int(rung.min_spend * 100))
        cases.append(f"WHEN {' AND '.join(conditions)} THEN {int(rung.id)}")
    catch_all = next(rung for rung in ladder if rung.is_catch_all)
    if not cases:
        return str(int(catch_all.id)), []
    return f"CASE {' '.join(cases)} ELSE {int(catch_all.id)} END", params


def rfm_stage(cursor, bounds: Bounds, ladder: Sequence[Rung], full: bool, stored: bool = False, *, trend_ratio: float, max_order_id: int) -> None:
    """seg_rfm: one row per member in scope with the order aggregates and the ladder's tier.

    The members read whole get the aggregates of their orders up to the run's
    watermark (max_order_id: a later order is new to the next run); the others keep
    their stored ones, the trend counts recounted where an order crossed a
    trend window's edge (nothing else of theirs can have changed: see nightly_scope)."""
    in_window = "o.ordered_at >= %s"
    paid = f"o.status = '{OrderStatus.PAID}'"
    recent = f"SUM(CASE WHEN {paid} AND o.ordered_at >= %s THEN 1 ELSE 0 END)"
    prior = f"SUM(CASE WHEN {paid} AND o.ordered_at >= %s AND o.ordered_at < %s THEN 1 ELSE 0 END)"
    measures = f"""
            MIN(CASE WHEN {paid} THEN o.ordered_at END) AS first_at,
            MAX(CASE WHEN {paid} THEN o.ordered_at END) AS last_at,
            SUM(CASE WHEN {paid} THEN 1 ELSE 0 END) AS orders_total,
            SUM(CASE WHEN {paid} AND {in_window} THEN 1 ELSE 0 END) AS orders_365,
            {_cents(f"CASE WHEN {paid} AND {in_window} THEN o.amount ELSE 0 END")} AS spend_cents,
            MAX(CASE WHEN {paid} AND {in_window} THEN o.amount END) AS max_365,
            SUM(CASE WHEN {in_window} AND o.status <> '{OrderStatus.PAID}' THEN 1 ELSE 0 END) AS refunded_365,
            SUM(CASE WHEN {in_window} THEN 1 ELSE 0 END) AS all_365,
            {recent} AS orders_30, {prior} AS orders_prior"""
    counted = "o.ordered_at < %s AND o.id <= %s"
    if _scoped_on_postgres(full):
        aggregate = f"LEFT JOIN LATERAL (SELECT {measures} FROM crm_order o WHERE o.member_id = s.member_id AND {counted}) a ON true"  # nosec B608
    else:
        aggregate = f"""LEFT JOIN (SELECT o.member_id AS member_id, {measures} FROM crm_order o
            WHERE {counted}{_member_filter(full, "o.member_id", only=f"reads = {READ_ALL}")} GROUP BY o.member_id) a ON a.member_id = s.member_id"""  # nosec B608
    trend_params = [bounds.recent_start, bounds.prior_start, bounds.recent_start]
    params: list = [bounds.window_start] * 5 + trend_params + [bounds.end, max_order_id]
    tier_case, tier_params = tier_case_sql(ladder, bounds, last="a.last_at", orders="COALESCE(a.orders_365, 0)", spend_cents="COALESCE(a.spend_cents, 0)")
    cursor.execute(
        f"""CREATE TEMP TABLE seg_rfm AS
        SELECT s.member_id AS member_id, a.first_at AS first_at, a.last_at AS last_at,
            COALESCE(a.orders_total, 0) AS orders_total, COALESCE(a.orders_365, 0) AS orders_365,
            COALESCE(a.spend_cents, 0) AS spend_cents, a.max_365 AS max_365,
            CASE WHEN a.all_365 > 0 THEN ROUND(1.0 * a.refunded_365 / a.all_365, 4) ELSE 0 END AS refund_rate,
            COALESCE(a.orders_30, 0) AS orders_30, COALESCE(a.orders_prior, 0) AS orders_prior,
            {tier_case} AS tier_id, 0 AS held
        FROM {SCOPE} s {aggregate}{"" if full else f" WHERE s.reads = {READ_ALL}"}"""  # nosec B608
        ,
        tier_params + params,
    )
    if stored:
        _rfm_stored(cursor, bounds, ladder, recent, prior, trend_params, trend_ratio)
    cursor.execute("CREATE UNIQUE INDEX seg_rfm_member ON seg_rfm (member_id)")


def _rfm_stored(cursor, bounds: Bounds, ladder: Sequence[Rung], recent: str, prior: str, trend_params: list, trend_ratio: float) -> None:
    """The stored aggregates of the members not read whole, their tier evaluated today.

    Members in the scope only because an order crossed a trend window's edge,
    whose trend stays what it was, leave the run: nothing else of theirs can
    have changed, and writing their counts alone was a third of the run. Their
    stored counts then lag the day; the member page counts them live."""
    counts = f"COALESCE({recent}, 0) AS orders_30, COALESCE({prior}, 0) AS orders_prior"
    since = "o.ordered_at >= %s AND o.ordered_at < %s"  # the trend windows only: a third of the 365 days
    if connection.vendor == "postgresql":
        trend = f"LEFT JOIN LATERAL (SELECT {counts} FROM crm_order o WHERE o.member_id = s.member_id AND s.reads = {READ_TREND} AND {since}) t ON true"  # nosec B608
    else:
        trend = f"""LEFT JOIN (SELECT o.member_id AS member_id, {counts} FROM crm_order o
            WHERE {since}{_member_filter(False, "o.member_id", only=f"reads = {READ_TREND}")} GROUP BY o.member_id) t ON t.member_id = s.member_id"""  # nosec B608
    spend = stored_cents("m.spend_365")
    tier_case, tier_params = tier_case_sql(ladder, bounds, last="m.last_order_at", orders="m.orders_365", spend_cents=spend)
    recount = f"CASE WHEN s.reads = {READ_TREND} THEN COALESCE(t.{{0}}, 0) ELSE m.{{1}} END"
    cursor.execute(
        f"""INSERT INTO seg_rfm (member_id, first_at, last_at, orders_total, orders_365, spend_cents, max_365, refund_rate,
                orders_30, orders_prior, tier_id, held)
            SELECT s.member_id, m.first_order_at, m.last_order_at, m.orders_total, m.orders_365, {spend}, m.max_order_365, m.refund_rate,
                {recount.format("orders_30", "orders_30d")}, {recount.format("orders_prior", "orders_prior_90d")}, {tier_case}, 0
            FROM {SCOPE} s JOIN {STORED} m ON m.member_id = s.member_id {trend}
            WHERE s.reads < {READ_ALL} AND NOT (s.trend_only = 1 AND m.trend = {trend_sql("COALESCE(t.orders_30, 0)", "COALESCE(t.orders_prior, 0)")})""",  # nosec B608
        tier_params + trend_params + [bounds.prior_start, bounds.end, trend_ratio, trend_ratio],
    )
    cursor.execute(f"DELETE FROM {SCOPE} WHERE trend_only = 1 AND member_id NOT IN (SELECT member_id FROM seg_rfm)")  # nosec B608 - names from code


def pins_apply(cursor, as_of: dt.date) -> int:
    """Members with a pin in force keep its tier."""
    active = "p.released_at IS NULL AND p.starts_on <= %s AND p.ends_on >= %s"
    return _execute(
        cursor,
        f"""UPDATE seg_rfm SET held = 1, tier_id = (
                SELECT p.tier_id FROM segments_tierpin p WHERE p.member_id = seg_rfm.member_id AND {active}
                ORDER BY p.created_at DESC, p.id DESC LIMIT 1)
            WHERE member_id IN (SELECT p.member_id FROM segments_tierpin p WHERE {active})""",  # nosec B608
        [as_of, as_of, as_of, as_of],
    )


@dataclass(frozen=True)
class ReviewCandidate:
    member_id: int
    current_tier_id: int
    proposed_tier_id: int


def review_needed(
    amounts: Sequence[Decimal], *, multiple: Decimal, min_amount: Decimal
) -> tuple[Decimal, Decimal] | None:
    """(largest order, median of the others) when the largest order in the
    window lies far outside the member's own history, else None."""
    if not amounts:
        return None
    ordered = sorted(amounts)
    largest = ordered[-1]
    others = ordered[:-1]
    usual = Decimal(statistics.median(others)) if others else Decimal("0")
    if largest > min_amount and largest > multiple * usual:
        return largest, usual.quantize(Decimal("0.01"))
    return None


def reviews_hold(cursor, bounds: Bounds, ladder: Sequence[Rung], config: SegmentSettings, run, stored: bool) -> int:
    """Promotions that only the member's one outlying order explains wait for a
    person. Rejected orders do not count towards a tier."""
    ranks = {rung.id: rung.rank for rung in ladder}
    cursor.execute(
        f"""SELECT r.member_id, m.tier_id, r.tier_id FROM seg_rfm r
            JOIN {_stored(stored)} m ON m.member_id = r.member_id
            WHERE r.held = 0 AND m.tier_id IS NOT NULL AND r.tier_id <> m.tier_id AND r.max_365 > %s""",  # nosec B608
        [float(config.review_min_amount)],  # a prefilter; the exact test is review_needed()
    )
    candidates = [
        ReviewCandidate(member_id, current, proposed)
        for member_id, current, proposed in cursor.fetchall()
        if ranks.get(proposed, -1) > ranks.get(current, -1)
    ]
    if not candidates:
        return 0
    from crm.models import Order

    ids = [candidate.member_id for candidate in candidates]
    orders: dict[int, list[tuple[int, Decimal, dt.datetime]]] = {}
    for order_id, member_id, amount, ordered_at in Order.objects.filter(
        member_id__in=ids, status=OrderStatus.PAID, ordered_at__gte=bounds.window_start, ordered_at__lt=bounds.end
    ).values_list("id", "member_id", "amount", "ordered_at"):
        orders.setdefault(member_id, []).append((order_id, amount, ordered_at))
    rejected = set(
        TierReview.objects.filter(member_id__in=ids, status=ReviewStatus.REJECTED).values_list("order_id", flat=True)
    )
    pending = dict(
        TierReview.objects.filter(member_id__in=ids, status=ReviewStatus.PENDING).values_list("member_id", "id")
    )
    holds: list[tuple[int, int]] = []
    for candidate in candidates:
        rows = [row for row in orders.get(candidate.member_id, []) if row[0] not in rejected]
        if not rows:
            continue
        allowed = tier_for(_rfm_of(rows, bounds.as_of), ladder)
        if len(rows) != len(orders.get(candidate.member_id, [])) and allowed.rank <= ranks[candidate.current_tier_id]:
            holds.append((candidate.member_id, candidate.current_tier_id))
            continue
        outlier = review_needed([row[1] for row in rows], multiple=config.review_multiple, min_amount=config.review_min_amount)
        if outlier is None:
            continue
        largest_id = max(rows, key=lambda row: (row[1], row[0]))[0]
        without = [row for row in rows if row[0] != largest_id]
        if tier_for(_rfm_of(without, bounds.as_of), ladder).rank >= ranks[candidate.proposed_tier_id]:
            continue  # the member qualifies without the outlying order
        holds.append((candidate.member_id, candidate.current_tier_id))
        fields = {
            "from_tier_id": candidate.current_tier_id,
            "to_tier_id": candidate.proposed_tier_id,
            "order_id": largest_id,
            "largest_order": outlier[0],
            "usual_order": outlier[1],
            "run": run,
        }
        if candidate.member_id in pending:
            TierReview.objects.filter(pk=pending[candidate.member_id]).update(**fields)
        else:
            TierReview.objects.create(member_id=candidate.member_id, **fields)
    if holds:
        cursor.executemany("UPDATE seg_rfm SET held = 1, tier_id = %s WHERE member_id = %s", [(tier, member) for member, tier in holds])
    return len(holds)


def _rfm_of(rows: Sequence[tuple[int, Decimal, dt.datetime]], as_of: dt.date) -> RFM:
    """R, F and M of (order id, amount, ordered at) rows already limited to the window."""
    last = max((row[2] for row in rows), default=None)
    return RFM(
        recency_days=recency_days(timezone.localtime(last).date() if last else None, as_of),
        orders_365=len(rows),
        spend_365=sum((row[1] for row in rows), Decimal("0")),
    )


def tier_changes_write(cursor, *, reason: str, run_id: int | None, now: dt.datetime, stored: bool) -> int:
    distinct = _distinct()
    changed = _execute(
        cursor,
        f"""INSERT INTO segments_tierchange (member_id, from_tier_id, to_tier_id, at, reason, run_id, note)
            SELECT r.member_id, m.tier_id, r.tier_id, %s, %s, %s, ''
            FROM seg_rfm r LEFT JOIN {_stored(stored)} m ON m.member_id = r.member_id
            WHERE m.tier_id {distinct} r.tier_id""",  # nosec B608
        [now, reason, run_id],
    )
    if changed and run_id is not None:
        # A real move (not a first placement) between tiers with different groups is a to-do for the operator.
        cursor.execute(
            f"""INSERT INTO segments_groupmove (member_id, change_id, from_community_id, to_community_id, status, created_at)
                SELECT c.member_id, c.id, ft.community_id, tt.community_id, 'pending', %s
                FROM segments_tierchange c
                JOIN segments_tier ft ON ft.id = c.from_tier_id
                JOIN segments_tier tt ON tt.id = c.to_tier_id
                WHERE c.run_id = %s AND ft.community_id {distinct} tt.community_id""",  # nosec B608
            [now, run_id],
        )
    return max(changed, 0)


LINE_SUMS = ("value_cents", "promo_cents", "first_cents", "second_cents", "others_cents")


def _line_sums() -> str:
    """The value and promo value of order lines l, in fen."""
    value = "l.quantity * l.unit_price"
    return f"""{_cents(value)} AS value_cents, {_cents(f"CASE WHEN l.is_promo THEN {value} ELSE 0 END")} AS promo_cents"""


def lines_stage(cursor, bounds: Bounds, full: bool, stored: bool = False, *, max_order_id: int, base: Bounds | None = None) -> None:
    """seg_cat: promo share and the two favourite categories, by spend in the
    window, with the sums they come from (members with lines, up to order
    max_order_id: the run's watermark, which the sums then cover).

    base: the bounds of the last run, when this one goes by difference
    (changes_create). The members it takes get the sums stored for them plus
    the lines of the orders that entered the window less those that left it,
    where that settles the two favourites (_lines_delta); the rest read every
    line of the window."""
    cursor.execute(
        """CREATE TEMP TABLE seg_cat (member_id bigint NOT NULL, first_category bigint, second_category bigint, promo_share double precision,
            value_cents bigint, promo_cents bigint, first_cents bigint, second_cents bigint, others_cents bigint, lines_as_of date, lines_order_id bigint)"""
    )
    if base is not None:
        _lines_delta(cursor, bounds, base)
    unsettled = " AND s.member_id NOT IN (SELECT member_id FROM seg_cat)" if base is not None else ""
    sums = _line_sums()
    window = f"o.status = '{OrderStatus.PAID}' AND o.ordered_at >= %s AND o.ordered_at < %s AND o.id <= %s"
    if not _scoped_on_postgres(full):
        scope = "" if full else (
            f" AND o.member_id IN (SELECT s.member_id FROM {SCOPE} s WHERE s.reads = {READ_ALL}{unsettled})"  # nosec B608
        )
        per_category = f"""SELECT o.member_id AS member_id, p.category_id AS category_id, {sums}
            FROM crm_orderline l JOIN crm_order o ON o.id = l.order_id JOIN crm_product p ON p.id = l.product_id
            WHERE {window}{scope}
            GROUP BY o.member_id, p.category_id"""  # nosec B608
    else:
        # As a join: every order of the window joined with all 32M lines before the
        # scope's members were taken (27 s for 48k members; this, 4.5 s).
        per_category = f"""SELECT s.member_id AS member_id, c.category_id AS category_id, c.value_cents AS value_cents, c.promo_cents AS promo_cents
            FROM {SCOPE} s CROSS JOIN LATERAL (
                SELECT p.category_id AS category_id, {sums}
                FROM crm_order o JOIN crm_orderline l ON l.order_id = o.id JOIN crm_product p ON p.id = l.product_id
                WHERE o.member_id = s.member_id AND {window}
                GROUP BY p.category_id) c
            WHERE s.reads = {READ_ALL}{unsettled}"""  # nosec B608
    cursor.execute(
        f"""INSERT INTO seg_cat (member_id, first_category, second_category, promo_share, {", ".join(LINE_SUMS)})
            SELECT member_id,
                MAX(CASE WHEN position = 1 THEN category_id END),
                MAX(CASE WHEN position = 2 THEN category_id END),
                CASE WHEN SUM(value_cents) > 0 THEN ROUND(1.0 * SUM(promo_cents) / SUM(value_cents), 4) ELSE 0 END,
                SUM(value_cents), SUM(promo_cents),
                MAX(CASE WHEN position = 1 THEN value_cents END),
                MAX(CASE WHEN position = 2 THEN value_cents END),
                MAX(CASE WHEN position > 2 THEN value_cents END)
            FROM (SELECT member_id, category_id, value_cents, promo_cents,
                    ROW_NUMBER() OVER (PARTITION BY member_id ORDER BY value_cents DESC, category_id) AS position
                  FROM ({per_category}) lines) ranked
            GROUP BY member_id""",  # nosec B608
        [bounds.window_start, bounds.end, max_order_id],
    )
    _stored_copy(
        cursor,
        "seg_cat",
        {
            "first_category": "m.favourite_category_id", "second_category": "m.second_category_id", "promo_share": "m.promo_share",
            "value_cents": "m.lines_value_cents", "promo_cents": "m.lines_promo_cents", "first_cents": "m.favourite_cents",
            "second_cents": "m.second_cents", "others_cents": "m.others_cents", "lines_as_of": "m.lines_as_of", "lines_order_id": "m.lines_order_id",
        },
        stored,
    )
    _analyze(cursor, "seg_cat")


def _lines_delta(cursor, bounds: Bounds, base: Bounds) -> None:
    """Into seg_cat, the members taken by difference (_taken) whose
    stored sums, plus the lines of the changed orders (changes_create) in the
    window now less those that left it, settle the two favourites: each must
    stay above any other category's bound. The others are not added (the
    caller reads them whole)."""
    cursor.execute(
        f"""CREATE TEMP TABLE seg_dcat AS
            SELECT member_id, category_id, SUM(sign * value_cents) AS value_cents, SUM(sign * promo_cents) AS promo_cents
            FROM (SELECT o.member_id AS member_id, p.category_id AS category_id, o.sign AS sign, {_line_sums()}
                  FROM {CHANGED} o JOIN crm_orderline l ON l.order_id = o.order_id JOIN crm_product p ON p.id = l.product_id
                  WHERE o.sign < 0 OR o.ordered_at >= %s
                  GROUP BY o.member_id, p.category_id, o.sign) changed
            GROUP BY member_id, category_id""",  # nosec B608 - names from code
        [bounds.window_start],
    )
    _analyze(cursor, "seg_dcat")
    other = f"d.category_id {_distinct()} m.favourite_category_id AND d.category_id {_distinct()} m.second_category_id"
    # v1, v2: the favourites' values now; bound: above any other category's (0 when there is none).
    cursor.execute(
        f"""CREATE TEMP TABLE seg_dsum AS
            SELECT m.member_id AS member_id, m.favourite_category_id AS c1, m.second_category_id AS c2,
                m.favourite_cents + COALESCE(SUM(CASE WHEN d.category_id = m.favourite_category_id THEN d.value_cents END), 0) AS v1,
                m.second_cents + COALESCE(SUM(CASE WHEN d.category_id = m.second_category_id THEN d.value_cents END), 0) AS v2,
                m.lines_value_cents + COALESCE(SUM(d.value_cents), 0) AS total,
                m.lines_promo_cents + COALESCE(SUM(d.promo_cents), 0) AS promo,
                SUM(CASE WHEN {other} THEN 1 ELSE 0 END) AS others_touched,
                CASE WHEN m.others_cents IS NULL THEN NULL
                    ELSE m.others_cents + COALESCE(MAX(CASE WHEN {other} AND d.value_cents > 0 THEN d.value_cents END), 0) END AS bound
            FROM {SCOPE} s JOIN {STORED} m ON m.member_id = s.member_id LEFT JOIN seg_dcat d ON d.member_id = s.member_id
            WHERE {_taken(base)}
            GROUP BY m.member_id, m.favourite_category_id, m.second_category_id, m.favourite_cents, m.second_cents,
                m.lines_value_cents, m.lines_promo_cents, m.others_cents"""  # nosec B608
    )
    first = "(x.c2 IS NULL OR x.v1 > x.v2 OR (x.v1 = x.v2 AND x.c1 < x.c2))"
    cursor.execute(
        f"""INSERT INTO seg_cat (member_id, first_category, second_category, promo_share, {", ".join(LINE_SUMS)})
            SELECT x.member_id,
                CASE WHEN {first} THEN x.c1 ELSE x.c2 END, CASE WHEN {first} THEN x.c2 ELSE x.c1 END,
                CASE WHEN x.total > 0 THEN ROUND(1.0 * x.promo / x.total, 4) ELSE 0 END,
                x.total, x.promo, CASE WHEN {first} THEN x.v1 ELSE x.v2 END, CASE WHEN {first} THEN x.v2 ELSE x.v1 END, x.bound
            FROM seg_dsum x
            WHERE CASE
                WHEN x.bound IS NULL AND x.others_touched > 0 THEN 0  -- a category new to the member: its value is not known
                WHEN x.c1 IS NULL THEN 1  -- no lines before and none since
                WHEN x.c2 IS NULL THEN CASE WHEN x.v1 > 0 THEN 1 ELSE 0 END
                WHEN x.v1 > COALESCE(x.bound, 0) AND x.v2 > COALESCE(x.bound, 0) THEN 1 ELSE 0 END = 1"""  # nosec B608
    )
    _drop(cursor, "seg_dcat", "seg_dsum")


def habits_stage(cursor, bounds: Bounds, full: bool, stored: bool = False, *, max_order_id: int, base: Bounds | None = None) -> None:
    """seg_habits: usual order hour (the most frequent local hour of the paid
    orders in the window, the earliest of a tie) with its orders and a bound
    on any other hour's, and repeat purchase days (distinct local days of paid
    orders after the first, all time), for every member in scope, counting
    the orders up to max_order_id.

    base: as in lines_stage. The members it takes get their stored counts
    plus those of the changed orders, where that settles the hour and every
    added order is dated after what was counted (_habits_delta); the rest
    read their orders again."""
    cursor.execute(
        "CREATE TEMP TABLE seg_habits (member_id bigint NOT NULL, hour integer, hour_orders integer, next_hour_orders integer, repeat_days integer)"
    )
    if base is not None:
        _habits_delta(cursor, bounds, base)
    hour, day = _local_hour(), _local_day()
    paid = f"o.status = '{OrderStatus.PAID}' AND o.id <= %s"

    def whole(alias: str = "") -> str:  # the scope's members read again: those the difference did not settle
        unsettled = f" AND {alias}member_id NOT IN (SELECT member_id FROM seg_habits)" if base is not None else ""  # nosec B608 - names from code
        return f"{alias}reads = {READ_ALL}{unsettled}"

    def per_member(measures: str, condition: str, by_hour: bool) -> str:
        """The measures of each member read again, by hour or not."""
        if _scoped_on_postgres(full):  # through the (member, time) index, member by member (see rfm_stage)
            return f"""SELECT s.member_id AS member_id, c.* FROM {SCOPE} s CROSS JOIN LATERAL (
                    SELECT {measures} FROM crm_order o WHERE o.member_id = s.member_id AND {condition}{" GROUP BY 1" if by_hour else ""}) c
                WHERE {whole("s.")}"""  # nosec B608 - names from code
        return f"""SELECT o.member_id AS member_id, {measures} FROM crm_order o
            WHERE {condition}{_member_filter(full, "o.member_id", only=whole())}
            GROUP BY o.member_id{", " + hour if by_hour else ""}"""  # nosec B608 - names from code

    # Each member's two busiest hours, ranked as the usual hour is chosen.
    cursor.execute(
        f"""CREATE TEMP TABLE seg_hours AS
            SELECT member_id, MAX(CASE WHEN position = 1 THEN hour END) AS hour, MAX(CASE WHEN position = 1 THEN orders END) AS hour_orders,
                COALESCE(MAX(CASE WHEN position = 2 THEN orders END), 0) AS next_hour_orders
            FROM (SELECT member_id, hour, orders, ROW_NUMBER() OVER (PARTITION BY member_id ORDER BY orders DESC, hour) AS position
                  FROM ({per_member(f"{hour} AS hour, COUNT(*) AS orders", f"{paid} AND o.ordered_at >= %s AND o.ordered_at < %s", True)}) counted) ranked
            WHERE position <= 2
            GROUP BY member_id""",  # nosec B608 - names from code
        [max_order_id, bounds.window_start, bounds.end],
    )
    cursor.execute(
        f"CREATE TEMP TABLE seg_days AS {per_member(f'COUNT(DISTINCT {day}) - 1 AS repeat_days', f'{paid} AND o.ordered_at < %s', False)}",  # nosec B608
        [max_order_id, bounds.end],
    )
    # Two tables with their indexes, then the join: SQLite joins a derived GROUP BY
    # table by rescanning it for every member (one statement ran for over 20 minutes at 100k).
    cursor.execute("CREATE UNIQUE INDEX seg_hours_member ON seg_hours (member_id)")
    cursor.execute("CREATE UNIQUE INDEX seg_days_member ON seg_days (member_id)")
    cursor.execute(
        f"""INSERT INTO seg_habits (member_id, hour, hour_orders, next_hour_orders, repeat_days)
            SELECT s.member_id, h.hour, COALESCE(h.hour_orders, 0), COALESCE(h.next_hour_orders, 0),
                CASE WHEN d.repeat_days > 0 THEN d.repeat_days ELSE 0 END
            FROM {SCOPE} s LEFT JOIN seg_hours h ON h.member_id = s.member_id LEFT JOIN seg_days d ON d.member_id = s.member_id
            WHERE {whole("s.")}"""  # nosec B608 - names from code
    )
    _drop(cursor, "seg_hours", "seg_days")
    _stored_copy(
        cursor,
        "seg_habits",
        {"hour": "m.usual_order_hour", "hour_orders": "m.hour_orders", "next_hour_orders": "m.next_hour_orders", "repeat_days": "m.repeat_days"},
        stored,
    )
    cursor.execute("CREATE UNIQUE INDEX seg_habits_member ON seg_habits (member_id)")


def _habits_delta(cursor, bounds: Bounds, base: Bounds) -> None:
    """Into seg_habits, the members taken by difference whose usual hour the
    changed orders settle, and whose added orders are all dated after the
    last run's as-of day (so that none of their local days was counted yet).

    The stored hour h had c orders, every other hour at most n, and the hours
    before h fewer than c (the earliest of a tie wins). Each hour's count
    moves by the changed orders at that hour, d(hour); h stays the usual hour
    when its new count c + d(h) is at least 1, above every earlier hour's
    bound min(n, c - 1) + max(0, d), and not below every later one's n + max(0, d)."""
    hour, day = _local_hour(), _local_day()
    cursor.execute(
        f"""CREATE TEMP TABLE seg_dhours AS SELECT o.member_id AS member_id, {hour} AS hour, SUM(o.sign) AS d FROM {CHANGED} o
            WHERE o.sign < 0 OR o.ordered_at >= %s GROUP BY o.member_id, {hour}""",  # nosec B608 - names from code
        [bounds.window_start],
    )
    cursor.execute(
        f"""CREATE TEMP TABLE seg_ddays AS SELECT o.member_id AS member_id, COUNT(DISTINCT {day}) AS days,
                SUM(CASE WHEN o.ordered_at < %s THEN 1 ELSE 0 END) AS backdated
            FROM {CHANGED} o WHERE o.sign > 0 GROUP BY o.member_id""",  # nosec B608 - names from code
        [base.end],
    )
    _analyze(cursor, "seg_dhours", "seg_ddays")
    cursor.execute(
        f"""CREATE TEMP TABLE seg_dhabits AS
            SELECT m.member_id AS member_id, m.usual_order_hour AS hour, m.repeat_days AS repeat_days, m.first_order_at AS first_order_at,
                m.hour_orders + COALESCE(SUM(CASE WHEN d.hour = m.usual_order_hour THEN d.d END), 0) AS c,
                CASE WHEN m.next_hour_orders < m.hour_orders - 1 THEN m.next_hour_orders ELSE m.hour_orders - 1 END
                    + COALESCE(MAX(CASE WHEN d.hour < m.usual_order_hour AND d.d > 0 THEN d.d END), 0) AS earlier,
                m.next_hour_orders + COALESCE(MAX(CASE WHEN d.hour > m.usual_order_hour AND d.d > 0 THEN d.d END), 0) AS later,
                COALESCE(MAX(d.d), 0) AS added
            FROM {SCOPE} s JOIN {STORED} m ON m.member_id = s.member_id LEFT JOIN seg_dhours d ON d.member_id = s.member_id
            WHERE {_taken(base)} AND m.hour_orders IS NOT NULL
            GROUP BY m.member_id, m.usual_order_hour, m.repeat_days, m.first_order_at, m.hour_orders, m.next_hour_orders"""  # nosec B608
    )
    cursor.execute(
        """INSERT INTO seg_habits (member_id, hour, hour_orders, next_hour_orders, repeat_days)
            SELECT x.member_id, x.hour, CASE WHEN x.hour IS NULL THEN 0 ELSE x.c END,
                CASE WHEN x.hour IS NULL THEN 0 WHEN x.earlier > x.later THEN x.earlier ELSE x.later END,
                CASE WHEN y.days IS NULL THEN x.repeat_days WHEN x.first_order_at IS NULL THEN y.days - 1 ELSE x.repeat_days + y.days END
            FROM seg_dhabits x LEFT JOIN seg_ddays y ON y.member_id = x.member_id
            WHERE COALESCE(y.backdated, 0) = 0
                AND CASE WHEN x.hour IS NULL THEN CASE WHEN x.added > 0 THEN 0 ELSE 1 END  -- no paid order in the window before; a new one: read whole
                    WHEN x.c >= 1 AND x.c > x.earlier AND x.c >= x.later THEN 1 ELSE 0 END = 1"""
    )
    _drop(cursor, "seg_dhours", "seg_ddays", "seg_dhabits")


def v_stage(cursor, bounds: Bounds, config: SegmentSettings, full: bool, stored: bool = False) -> None:
    """seg_v: V from weighted shares, invites, group messages and organised group-buys in the window (members with events);
    the stored V of the members in scope whose events did not change."""
    weights = {
        "share": config.v_weight_share,
        "invite": config.v_weight_invite,
        "group_message": config.v_weight_group_message,
        "organised_group_buy": config.v_weight_group_buy,
    }
    case = "CASE e.kind " + " ".join("WHEN %s THEN %s" for _ in weights) + " ELSE 0 END"
    params: list = [value for pair in weights.items() for value in pair]
    cursor.execute(
        f"""CREATE TEMP TABLE seg_v AS
            SELECT e.member_id AS member_id, ROUND(SUM(e.count * {case}), 2) AS v_score FROM crm_engagementevent e
            WHERE e.occurred_at >= %s AND e.occurred_at < %s{_member_filter(full, "e.member_id", only="events = 1")}
            GROUP BY e.member_id""",  # nosec B608
        params + [bounds.window_start, bounds.end],
    )
    _stored_copy(cursor, "seg_v", {"v_score": "m.v_score"}, stored, skipped="s.events = 0 AND m.v_score <> 0")
    _analyze(cursor, "seg_v")


@dataclass(frozen=True)
class ChurnInputs:
    member_ids: np.ndarray
    x: np.ndarray
    t_x_days: np.ndarray
    T_days: np.ndarray  # noqa: N815
    stored_band: np.ndarray | None = None  # the stored risk band (from the stored metrics only)


def _day_number(column: str) -> str:
    """The local date of a timestamp as Python's date.toordinal(), in SQL: a
    million members' dates converted in Python took eight seconds."""
    return _sql(
        f"(({column} AT TIME ZONE '{settings.TIME_ZONE}')::date - DATE '0001-01-01' + 1)",
        f"CAST(julianday(date({column}, '+8 hours')) - julianday('0001-01-01') + 1 AS INTEGER)",
    )


BANDS = ("", *RiskBand.values)  # a risk band's number in a fetched array: none, low, medium, high


def churn_inputs(cursor, as_of: dt.date, *, staged: bool) -> ChurnInputs:
    """x, t_x and T in days for members with a paid order: of this run's
    members from its own tables (staged), or of everyone from the stored
    metrics, with their stored risk band."""
    if staged:
        cursor.execute(
            f"SELECT r.member_id, h.repeat_days, {_day_number('r.first_at')}, {_day_number('r.last_at')} FROM seg_rfm r "
            f"JOIN seg_habits h ON h.member_id = r.member_id WHERE r.first_at IS NOT NULL"  # nosec B608
        )
    else:
        band = "CASE risk_band " + " ".join(f"WHEN '{name}' THEN {number}" for number, name in enumerate(BANDS) if name) + " ELSE 0 END"
        cursor.execute(
            f"SELECT member_id, repeat_days, {_day_number('first_order_at')}, {_day_number('last_order_at')}, {band} "
            f"FROM segments_membermetrics WHERE first_order_at IS NOT NULL"  # nosec B608
        )
    rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 4 if staged else 5)
    first, last = rows[:, 2].astype(float), rows[:, 3].astype(float)
    return ChurnInputs(rows[:, 0], rows[:, 1].astype(float), last - first, as_of.toordinal() - first, None if staged else rows[:, 4])


def churn_scores(inputs: ChurnInputs, fit: ChurnFit | None, config: SegmentSettings) -> tuple[np.ndarray, np.ndarray]:
    """(P(alive), expected orders in the next 30 days) per member, from the fit or the heuristic."""
    if inputs.x.size == 0:
        return np.zeros(0), np.zeros(0)
    if fit is not None:
        unit = 7.0 if fit.time_unit == "week" else 1.0
        params = (fit.r, fit.alpha, fit.a, fit.b)
        x, t_x, T = inputs.x, inputs.t_x_days / unit, inputs.T_days / unit  # noqa: N806
        return (
            churn.p_alive(fit.model, params, x, t_x, T),
            churn.expected_purchases(fit.model, params, CHURN_HORIZON_DAYS / unit, x, t_x, T),
        )
    repeaters = inputs.x > 0
    own_gap = np.where(repeaters, inputs.t_x_days / np.maximum(inputs.x, 1), np.nan)
    shop_gap = float(np.nanmedian(own_gap)) if repeaters.any() else 30.0
    gap = np.where(repeaters, own_gap, shop_gap)
    return churn.heuristic(inputs.T_days - inputs.t_x_days, gap, CHURN_HORIZON_DAYS)


BAND_HORIZON_DAYS = 3650  # a band that holds longer than this is stored as not moving (the weekly full run looks again)


def band_moves(inputs: ChurnInputs, p: np.ndarray, fit: ChurnFit | None, config: SegmentSettings, as_of: dt.date) -> np.ndarray:
    """The day (date.toordinal()) on which each member's risk band moves if he
    does not order again, 0 for not within BAND_HORIZON_DAYS, all 0 under the
    heuristic (nightly_scope then scores everyone). With x and t_x fixed,
    P(alive) only falls as days pass: the band moves when it first drops below
    the next cut-off, solved for T and settled on the test the scores use."""
    if fit is None or inputs.x.size == 0:
        return np.zeros(inputs.x.size, dtype=np.int64)
    unit = 7.0 if fit.time_unit == "week" else 1.0
    params = (fit.r, fit.alpha, fit.a, fit.b)
    cut = np.where(p >= config.risk_medium_below, config.risk_medium_below, np.where(p >= config.risk_high_below, config.risk_high_below, 0.0))
    t_x = inputs.t_x_days / unit
    crossing = churn.p_alive_below_after(fit.model, params, inputs.x, t_x, cut) * unit  # in days after the first order
    today = inputs.T_days
    moves = (crossing < today + BAND_HORIZON_DAYS) & (cut > 0)
    day = np.maximum(np.floor(np.where(moves, crossing, today)) + 1, today + 1)

    def moved(days: np.ndarray) -> np.ndarray:
        return churn.p_alive(fit.model, params, inputs.x, t_x, days / unit) < cut

    for _ in range(2):  # the closed form and p_alive round differently by a hair at the cut-off
        day = np.where(moves & ~moved(day), day + 1, day)
        earlier = np.maximum(day - 1, today + 1)
        day = np.where(moves & (earlier < day) & moved(earlier), earlier, day)
    first = as_of.toordinal() - today
    return np.where(moves, first + day, 0).astype(np.int64)


def churn_stage(cursor, inputs: ChurnInputs, p: np.ndarray, expected: np.ndarray, moves: np.ndarray, config: SegmentSettings) -> None:
    """seg_churn: rounded scores, risk bands and the day each band moves (band_moves) of the members with a paid order."""
    cursor.execute(
        "CREATE TEMP TABLE seg_churn (member_id bigint PRIMARY KEY, p_alive double precision, expected double precision, band varchar(8), moves bigint)"
    )
    bands = churn.risk_band(p, high_below=config.risk_high_below, medium_below=config.risk_medium_below)
    load_rows(
        "seg_churn",
        ["member_id", "p_alive", "expected", "band", "moves"],
        zip(inputs.member_ids.tolist(), np.round(p, 3).tolist(), np.round(expected, 3).tolist(), bands.tolist(), moves.tolist()),
    )
    _analyze(cursor, "seg_churn")


def _date_of_day_number(column: str) -> str:
    """A date.toordinal() as a date, in SQL (the reverse of _day_number)."""
    return _sql(f"(DATE '0001-01-01' + CAST({column} - 1 AS integer))", f"date({column} + 1721424.5)")


STAGED = ("seg_rfm", "seg_cat", "seg_habits", "seg_v", "seg_churn", STORED, CHANGED)


def trend_sql(recent: str, prior: str) -> str:
    """The trend from the 30-day count against the 90 days before, in SQL (two parameters: the trend ratio)."""
    return (
        f"CASE WHEN {recent} * 3 > {prior} * %s AND {recent} > 0 THEN 'rising' "
        f"WHEN {recent} * 3 * %s < {prior} THEN 'falling' ELSE 'steady' END"
    )


def metrics_write(cursor, *, now: dt.datetime, trend_ratio: float, as_of: dt.date, max_order_id: int, stored: bool) -> int:
    """One write of every metric and the tier of the members in scope, from
    the stage tables: an update of the rows whose values changed, an insert
    of those not there yet.

    One write per row and run: the stages used to UPDATE the table one after
    another, and five versions of a million rows in one transaction left it
    five times its live size, so that every later scan (circle counts, lists)
    read the dead rows too."""
    distinct = _distinct()
    money = "r.spend_cents / 100.0"
    trend = trend_sql("r.orders_30", "r.orders_prior")
    columns = {
        "first_order_at": "r.first_at",
        "last_order_at": "r.last_at",
        "orders_total": "r.orders_total",
        "orders_365": "r.orders_365",
        "spend_365": money,
        "max_order_365": "COALESCE(r.max_365, 0)",
        "avg_order_value": f"CASE WHEN r.orders_365 > 0 THEN ROUND({money} / r.orders_365, 2) ELSE 0 END",
        "orders_30d": "r.orders_30",
        "orders_prior_90d": "r.orders_prior",
        "trend": trend,
        "refund_rate": "r.refund_rate",
        "tier_id": "r.tier_id",
        # Members without lines, events or paid orders in scope lose what those gave them.
        "favourite_category_id": "c.first_category",
        "second_category_id": "c.second_category",
        "promo_share": "COALESCE(c.promo_share, 0)",
        "lines_value_cents": "CASE WHEN c.member_id IS NULL THEN 0 ELSE c.value_cents END",
        "lines_promo_cents": "CASE WHEN c.member_id IS NULL THEN 0 ELSE c.promo_cents END",
        "favourite_cents": "c.first_cents",
        "second_cents": "c.second_cents",
        "others_cents": "c.others_cents",
        "lines_as_of": "COALESCE(c.lines_as_of, %s)",
        "lines_order_id": "COALESCE(c.lines_order_id, %s)",
        "usual_order_hour": "h.hour",
        "hour_orders": "h.hour_orders",
        "next_hour_orders": "h.next_hour_orders",
        "repeat_days": "COALESCE(h.repeat_days, 0)",
        "v_score": "COALESCE(v.v_score, 0)",
        "p_alive": "ch.p_alive",
        "expected_orders_30d": "ch.expected",
        "risk_band": "COALESCE(ch.band, '')",
        "band_moves_on": f"CASE WHEN ch.moves > 0 THEN {_date_of_day_number('ch.moves')} END",
    }
    params = [trend_ratio, trend_ratio, as_of, max_order_id]
    staged = f"""SELECT r.member_id AS member_id, {", ".join(f"{value} AS {name}" for name, value in columns.items())}
            FROM seg_rfm r
            LEFT JOIN seg_cat c ON c.member_id = r.member_id
            LEFT JOIN seg_habits h ON h.member_id = r.member_id
            LEFT JOIN seg_v v ON v.member_id = r.member_id
            LEFT JOIN seg_churn ch ON ch.member_id = r.member_id"""  # nosec B608 - names from code
    # The rows there are, by UPDATE ... FROM: a third faster than the same rows through
    # INSERT ... ON CONFLICT, which first tries each as an insert into the primary key.
    updated = _execute(
        cursor,
        f"""UPDATE segments_membermetrics SET {", ".join(f"{name} = x.{name}" for name in columns)},
                tier_since = CASE WHEN segments_membermetrics.tier_id {distinct} x.tier_id THEN %s ELSE segments_membermetrics.tier_since END,
                computed_at = %s
            FROM ({staged}) x
            WHERE x.member_id = segments_membermetrics.member_id
                AND ({" OR ".join(f"segments_membermetrics.{name} {distinct} x.{name}" for name in columns)})""",  # nosec B608
        [now, now, *params],
    )
    missing = (
        f"r.member_id NOT IN (SELECT member_id FROM {STORED})"  # nosec B608 - names from code
        if stored else "NOT EXISTS (SELECT 1 FROM segments_membermetrics m WHERE m.member_id = r.member_id)"
    )
    inserted = _execute(
        cursor,
        f"""INSERT INTO segments_membermetrics (member_id, {", ".join(columns)}, tier_since, computed_at)
            SELECT x.member_id, {", ".join(f"x.{name}" for name in columns)}, %s, %s FROM ({staged} WHERE {missing}) x""",  # nosec B608
        [now, now, *params],
    )
    return updated + inserted


_COMPILED: dict[tuple, object] = {}
_COMPILED_MAX = 512

# How a scoped run joins the tables a circle's rules read (alias: parent alias,
# parent column, column), each under its own name as Django's compiled rules name it.
_RULE_JOINS = {
    "segments_membermetrics": ("crm_member", "id", "member_id"),
    "crm_category": ("segments_membermetrics", "favourite_category_id", "id"),
}


def _compiled(kind: str, circle: Circle, as_of: dt.date, full: bool, build):
    """build(matching members' queryset) for a circle's rules, once per process for
    the same rules, day and top-V line: building the FilterSet and validating its
    form cost about 5 ms per circle, which was most of a one-member update."""
    from crm.models import Member
    from segments.circles import v_score_threshold

    line = v_score_threshold(float(circle.rules["v_top_percent"])) if "v_top_percent" in circle.rules else None
    key = (kind, json.dumps(circle.rules, sort_keys=True), as_of, full, line)
    if key not in _COMPILED:
        scope = Member.objects.all() if full else Member.objects.filter(id__in=RawSQL(f"SELECT member_id FROM {SCOPE}", []))  # nosec B608 B611
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        _COMPILED[key] = build(circle_queryset(circle.rules, as_of=as_of, queryset=scope).values("id"))
    return _COMPILED[key]


def _match_sql(circle: Circle, as_of: dt.date, full: bool) -> tuple[str, tuple]:
    """The SELECT of the members in scope that a circle's rules take."""

    def build(matching) -> tuple[str, tuple]:
        try:
            return matching.query.sql_with_params()
        except EmptyResultSet:  # a rule that can match nobody (say, the top 5% of an empty base)
            return "SELECT id FROM crm_member WHERE false", ()

    return _compiled("match", circle, as_of, full, build)


def _condition_sql(circle: Circle, as_of: dt.date) -> tuple[str, tuple, set[str]] | None:
    """A circle's rules as one condition over the member row and the rows of
    _RULE_JOINS (with the aliases it reads), or None when the rules join other
    tables or join these differently (the circle is then matched on its own).

    Over LEFT joins the condition means what it means over the rules' own INNER
    joins: a missing row's columns are NULL, and no rule turns a NULL into true
    but "has not ordered", whose join Django makes a LEFT join itself."""

    def build(matching) -> tuple[str, tuple, set[str]] | None:
        query = matching.query
        aliases = {alias for alias, count in query.alias_refcount.items() if count}
        for alias in aliases - {"crm_member"}:
            join = query.alias_map[alias]
            expected = _RULE_JOINS.get(alias)
            if (
                expected is None or join.table_name != alias or join.filtered_relation is not None
                or len(join.join_cols) != 1 or (join.parent_alias, *join.join_cols[0]) != expected
            ):
                return None
        compiler = query.get_compiler(connection=connection)
        try:
            sql, params = compiler.compile(query.where)
        except EmptyResultSet:
            return "1 = 0", (), set()
        return sql, tuple(params), aliases

    return _compiled("condition", circle, as_of, True, build)


def _hits_create(cursor, conditions: Sequence[tuple[int, str, tuple, set[str]]]) -> None:
    """seg_hits: for each member in scope, one 0/1 column per circle (c<id>), all
    circles evaluated in one pass over the scope's rows. Matching circle by
    circle, each of the eleven defaults scanned an index of a million metrics
    rows and hash-joined the scope: most of a nightly run's circles stage."""
    used = set().union(*(aliases for *_, aliases in conditions))
    used |= {_RULE_JOINS[alias][0] for alias in used if alias in _RULE_JOINS}  # and what they hang from
    joins = "".join(
        f' LEFT JOIN "{alias}" ON "{alias}"."{column}" = "{parent}"."{parent_column}"'
        for alias, (parent, parent_column, column) in _RULE_JOINS.items()
        if alias in used
    )
    columns = "".join(f", CASE WHEN {sql} THEN 1 ELSE 0 END AS c{int(pk)}" for pk, sql, _params, _aliases in conditions)
    cursor.execute(
        f'CREATE TEMP TABLE seg_hits AS SELECT s.member_id AS member_id{columns} '
        f'FROM {SCOPE} s JOIN "crm_member" ON "crm_member"."id" = s.member_id{joins}',  # nosec B608 - names from code, rules compiled by Django
        [param for _pk, _sql, params, _aliases in conditions for param in params],
    )


def circles_write(cursor, circles: Sequence[Circle], as_of: dt.date, full: bool, now: dt.datetime) -> None:
    """Materialise each active circle for the members in scope: add who now
    matches (since now), remove who no longer does.

    A full run writes circle by circle (each match a scan of a million
    members); a scoped run evaluates every circle in one pass over the
    scope's rows (seg_hits) and writes them at once."""
    scope_clause = _member_filter(full)
    passed: list = []  # the circles seg_hits evaluates (scoped runs)
    if full:
        groups = [[(circle.pk, *_match_sql(circle, as_of, full))] for circle in circles]
    else:
        conditions = {circle.pk: _condition_sql(circle, as_of) for circle in circles}
        passed = [(pk, *condition) for pk, condition in conditions.items() if condition is not None]
        if passed:
            _hits_create(cursor, passed)
        matches = [
            (circle.pk, f"SELECT member_id AS id FROM seg_hits WHERE c{int(circle.pk)} = 1", ())  # nosec B608
            if conditions[circle.pk] is not None else (circle.pk, *_match_sql(circle, as_of, full))
            for circle in circles
        ]
        groups = [matches] if matches else []
    for group in groups:
        union = " UNION ALL ".join(
            f"SELECT {int(pk)} AS circle_id, matched.id AS member_id FROM ({sql}) matched" for pk, sql, _params in group  # nosec B608
        )
        ids = ", ".join(str(int(pk)) for pk, _sql, _params in group)
        params = [param for _pk, _sql, group_params in group for param in group_params]
        _memberships_sync(cursor, ids, union, params, scope_clause, now)
    if passed:
        _drop(cursor, "seg_hits")
    if full:
        for circle in circles:
            Circle.objects.filter(pk=circle.pk).update(
                member_count=CircleMembership.objects.filter(circle=circle).count(), counted_at=now
            )


def _memberships_sync(cursor, ids: str, union: str, params: Sequence, scope_clause: str, now: dt.datetime) -> None:
    """Make the memberships of circles `ids` of the members in scope the pairs
    `union` selects: the pairs held now are read once, and only the
    difference is written (most pairs stand from one day to the next; inserting
    them all again probed the unique index once per pair)."""
    # Typed columns: SQLite uses no index to compare an untyped column (CREATE TABLE AS of a literal) with a typed one.
    cursor.execute("CREATE TEMP TABLE seg_circled (circle_id bigint NOT NULL, member_id bigint NOT NULL)")
    cursor.execute("CREATE TEMP TABLE seg_held (id bigint NOT NULL, circle_id bigint NOT NULL, member_id bigint NOT NULL)")
    cursor.execute(f"INSERT INTO seg_circled (circle_id, member_id) {union}", params)  # nosec B608
    cursor.execute(
        f"INSERT INTO seg_held (id, circle_id, member_id) SELECT id, circle_id, member_id FROM segments_circlemembership "  # nosec B608
        f"WHERE circle_id IN ({ids}){scope_clause}"
    )
    if connection.vendor == "postgresql":
        _analyze(cursor, "seg_circled", "seg_held")  # it hash-joins the two
    else:  # SQLite runs each NOT EXISTS as a scan of the other table: 70k × 70k pairs for one circle
        cursor.execute("CREATE INDEX seg_circled_pair ON seg_circled (circle_id, member_id)")
        cursor.execute("CREATE INDEX seg_held_pair ON seg_held (circle_id, member_id)")
    cursor.execute(
        "DELETE FROM segments_circlemembership WHERE id IN (SELECT h.id FROM seg_held h WHERE NOT EXISTS "
        "(SELECT 1 FROM seg_circled m WHERE m.circle_id = h.circle_id AND m.member_id = h.member_id))"
    )
    cursor.execute(
        "INSERT INTO segments_circlemembership (circle_id, member_id, since) SELECT m.circle_id, m.member_id, %s FROM seg_circled m "
        "WHERE NOT EXISTS (SELECT 1 FROM seg_held h WHERE h.circle_id = m.circle_id AND h.member_id = m.member_id) "
        "ON CONFLICT (circle_id, member_id) DO NOTHING",
        [now],
    )
    _drop(cursor, "seg_circled", "seg_held")
