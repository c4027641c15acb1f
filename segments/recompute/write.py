"""Stage 7, write: one statement that writes the staged figures into
segments_membermetrics, touching only the rows that changed."""

from __future__ import annotations

import datetime as dt

from segments.recompute.base import STORED, distinct_sql, execute_count, vendor_sql
from segments.recompute.scope import CHANGED


def _date_of_day_number(column: str) -> str:
    """A date.toordinal() as a date, in SQL (the reverse of _day_number)."""
    return vendor_sql(f"(DATE '0001-01-01' + CAST({column} - 1 AS integer))", f"date({column} + 1721424.5)")


STAGED = ("seg_rfm", "seg_cat", "seg_habits", "seg_v", "seg_churn", STORED, CHANGED)


def trend_sql(recent: str, prior: str) -> str:
    """The trend from the 30-day count against the 90 days before, in SQL (two parameters: the trend ratio)."""
    return (
        f"CASE WHEN {recent} * 3 > {prior} * %s AND {recent} > 0 THEN 'rising' "
        f"WHEN {recent} * 3 * %s < {prior} THEN 'falling' ELSE 'steady' END"
    )


def metrics_write(cursor, *, now: dt.datetime, trend_ratio: float, as_of: dt.date, max_order_id: int, stored: bool, at: dt.datetime | None = None) -> int:
    """One write of every metric and the tier of the members in scope, from
    the stage tables: an update of the rows whose values changed, an insert
    of those not there yet.

    One write per row and run: the stages used to UPDATE the table one after
    another, and five versions of a million rows in one transaction left it
    five times its live size, so that every later scan (circle counts, lists)
    read the dead rows too."""
    at = at or now  # tier_since: when the move is recorded (tier_changes_write)
    distinct = distinct_sql()
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
    updated = execute_count(
        cursor,
        f"""UPDATE segments_membermetrics SET {", ".join(f"{name} = x.{name}" for name in columns)},
                tier_since = CASE WHEN segments_membermetrics.tier_id {distinct} x.tier_id THEN %s ELSE segments_membermetrics.tier_since END,
                computed_at = %s
            FROM ({staged}) x
            WHERE x.member_id = segments_membermetrics.member_id
                AND ({" OR ".join(f"segments_membermetrics.{name} {distinct} x.{name}" for name in columns)})""",  # nosec B608
        [at, now, *params],
    )
    if stored:
        missing = f"r.member_id NOT IN (SELECT member_id FROM {STORED})"  # nosec B608 - names from code
    elif not _has_rows(cursor, "segments_membermetrics"):
        # The first run: everyone is missing. Asked as NOT EXISTS of a table analysed while
        # empty, PostgreSQL planned a scan of it per row while filling it (a million members:
        # cancelled after 10 minutes, for a run that takes three).
        missing = "TRUE"
    else:
        missing = "NOT EXISTS (SELECT 1 FROM segments_membermetrics m WHERE m.member_id = r.member_id)"
    inserted = execute_count(
        cursor,
        f"""INSERT INTO segments_membermetrics (member_id, {", ".join(columns)}, tier_since, computed_at)
            SELECT x.member_id, {", ".join(f"x.{name}" for name in columns)}, %s, %s FROM ({staged} WHERE {missing}) x""",  # nosec B608
        [at, now, *params],
    )
    return updated + inserted


def _has_rows(cursor, table: str) -> bool:
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")  # nosec B608 - names from code
    return bool(cursor.fetchone()[0])
