"""What every stage shares: the as-of date's windows (Bounds), the scope and
stored-metrics table names, and small SQL helpers for PostgreSQL and SQLite.

SQL here is assembled from table and column names defined in code, marked
"nosec B608" for bandit; every value travels as a query parameter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from segments.days import local_midnight

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


def vendor_sql(postgres: str, sqlite: str) -> str:
    return postgres if connection.vendor == "postgresql" else sqlite


def distinct_sql() -> str:
    """NULL-safe inequality in this database's SQL."""
    return vendor_sql("IS DISTINCT FROM", "IS NOT")


def execute_count(cursor, sql: str, params: Sequence = ()) -> int:
    cursor.execute(sql, params)
    return cursor.rowcount


def tables_drop(cursor, *tables: str) -> None:
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def tables_analyze(cursor, *tables: str) -> None:
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


def stored_table(stored: bool) -> str:
    """The table holding the stored metrics of the run's members: a nightly run's copy (stored), else the table itself."""
    return STORED if stored else "segments_membermetrics"


def member_filter_sql(full: bool, column: str = "member_id", *, only: str = "") -> str:
    """The scope's condition on a member column; only: a condition on the scope's rows (say, reads = 2)."""
    if full:
        return ""
    return f" AND {column} IN (SELECT member_id FROM {SCOPE}{f' WHERE {only}' if only else ''})"  # nosec B608


def scoped_on_postgres(full: bool) -> bool:
    """A run of part of the members on PostgreSQL: the stages then read each
    member's orders through the (member, time) index, one LATERAL subquery per
    member. As joins, PostgreSQL scanned every order (and in the lines stage
    joined them with all order lines) before it took the scope's members."""
    return not full and connection.vendor == "postgresql"


def stored_copy(cursor, table: str, columns: dict[str, str], stored: bool, skipped: str = f"s.reads < {READ_ALL}") -> None:
    """Add to a stage table the stored values of the members in scope that it skipped (stored: the run has such members)."""
    if not stored:
        return
    cursor.execute(
        f"INSERT INTO {table} (member_id, {', '.join(columns)}) "  # nosec B608 - names from code
        f"SELECT m.member_id, {', '.join(columns.values())} FROM {STORED} m "
        f"JOIN {SCOPE} s ON s.member_id = m.member_id AND {skipped}"
    )


def cents_sql(expression: str) -> str:
    """Money summed exactly in fen on both databases (SQLite stores decimals as REAL)."""
    return vendor_sql(f"CAST(SUM({expression}) * 100 AS BIGINT)", f"SUM(CAST(ROUND(({expression}) * 100) AS INTEGER))")


def stored_cents(column: str) -> str:
    """A stored amount in fen."""
    return vendor_sql(f"CAST({column} * 100 AS BIGINT)", f"CAST(ROUND({column} * 100) AS INTEGER)")


def local_hour_sql() -> str:
    return vendor_sql(
        f"date_part('hour', o.ordered_at AT TIME ZONE '{settings.TIME_ZONE}')::int",  # not EXTRACT: its numeric cost 0.4 s per 15M orders
        "CAST(strftime('%%H', o.ordered_at, '+8 hours') AS INTEGER)",
    )


def local_day_sql() -> str:
    return vendor_sql(f"(o.ordered_at AT TIME ZONE '{settings.TIME_ZONE}')::date", "date(o.ordered_at, '+8 hours')")


def days_after_end_sql(ref: str, days: str) -> str:
    """The local midnight that ends the calendar day `days` days after ref's day:
    an instant before it falls on ref's day + days or earlier ("within N days of
    ref", counted in Beijing days like every day rule of DOMAIN.md)."""
    return vendor_sql(
        f"((date_trunc('day', {ref} AT TIME ZONE '{settings.TIME_ZONE}') + ({days} + 1) * interval '1 day') AT TIME ZONE '{settings.TIME_ZONE}')",
        f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', {ref}, '+8 hours', 'start of day', '+' || ({days} + 1) || ' days', '-8 hours')",
    )
