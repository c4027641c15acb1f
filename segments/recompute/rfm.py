"""Stage 2, RFM and tiers: recency, frequency and monetary value per member
(seg_rfm), the tier CASE built from the ladder, pins, the promotions held for
review, and the tier moves written to the tier history."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from crm.feeds import feed_write
from crm.models import OrderStatus
from segments.ladder import RFM, Rung, recency_days, tier_for
from segments.models import ReviewStatus, SegmentSettings, TierReview
from segments.recompute.base import (
    READ_ALL,
    READ_TREND,
    SCOPE,
    STORED,
    Bounds,
    cents_sql,
    distinct_sql,
    execute_count,
    member_filter_sql,
    scoped_on_postgres,
    stored_cents,
    stored_table,
)
from segments.recompute.write import trend_sql


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
            {cents_sql(f"CASE WHEN {paid} AND {in_window} THEN o.amount ELSE 0 END")} AS spend_cents,
            MAX(CASE WHEN {paid} AND {in_window} THEN o.amount END) AS max_365,
            SUM(CASE WHEN {in_window} AND o.status <> '{OrderStatus.PAID}' THEN 1 ELSE 0 END) AS refunded_365,
            SUM(CASE WHEN {in_window} THEN 1 ELSE 0 END) AS all_365,
            {recent} AS orders_30, {prior} AS orders_prior"""
    counted = "o.ordered_at < %s AND o.id <= %s"
    if scoped_on_postgres(full):
        aggregate = f"LEFT JOIN LATERAL (SELECT {measures} FROM crm_order o WHERE o.member_id = s.member_id AND {counted}) a ON true"  # nosec B608
    else:
        aggregate = f"""LEFT JOIN (SELECT o.member_id AS member_id, {measures} FROM crm_order o
            WHERE {counted}{member_filter_sql(full, "o.member_id", only=f"reads = {READ_ALL}")} GROUP BY o.member_id) a ON a.member_id = s.member_id"""  # nosec B608
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
            WHERE {since}{member_filter_sql(False, "o.member_id", only=f"reads = {READ_TREND}")} GROUP BY o.member_id) t ON t.member_id = s.member_id"""  # nosec B608
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
    return execute_count(
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
            JOIN {stored_table(stored)} m ON m.member_id = r.member_id
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


def tier_changes_write(cursor, *, reason: str, run_id: int | None, now: dt.datetime, stored: bool, at: dt.datetime | None = None) -> int:
    """The moves into the tier history at `at` (a past as-of day's end; else now); the group moves they call for, as to-dos of now."""
    distinct = distinct_sql()
    feed_write()  # the shop's webhooks read tier changes by id (crm.feeds)
    changed = execute_count(
        cursor,
        f"""INSERT INTO segments_tierchange (member_id, from_tier_id, to_tier_id, at, reason, run_id, note)
            SELECT r.member_id, m.tier_id, r.tier_id, %s, %s, %s, ''
            FROM seg_rfm r LEFT JOIN {stored_table(stored)} m ON m.member_id = r.member_id
            WHERE m.tier_id {distinct} r.tier_id""",  # nosec B608
        [at or now, reason, run_id],
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
