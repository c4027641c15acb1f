"""Stage 4, habits: the usual order hour and the days between orders (seg_habits)."""

from __future__ import annotations

from crm.models import OrderStatus
from segments.recompute.base import (
    READ_ALL,
    SCOPE,
    STORED,
    Bounds,
    local_day_sql,
    local_hour_sql,
    member_filter_sql,
    scoped_on_postgres,
    stored_copy,
    tables_analyze,
    tables_drop,
)
from segments.recompute.scope import CHANGED, taken_sql


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
    hour, day = local_hour_sql(), local_day_sql()
    paid = f"o.status = '{OrderStatus.PAID}' AND o.id <= %s"

    def whole(alias: str = "") -> str:  # the scope's members read again: those the difference did not settle
        unsettled = f" AND {alias}member_id NOT IN (SELECT member_id FROM seg_habits)" if base is not None else ""  # nosec B608 - names from code
        return f"{alias}reads = {READ_ALL}{unsettled}"

    def per_member(measures: str, condition: str, by_hour: bool) -> str:
        """The measures of each member read again, by hour or not."""
        if scoped_on_postgres(full):  # through the (member, time) index, member by member (see rfm_stage)
            return f"""SELECT s.member_id AS member_id, c.* FROM {SCOPE} s CROSS JOIN LATERAL (
                    SELECT {measures} FROM crm_order o WHERE o.member_id = s.member_id AND {condition}{" GROUP BY 1" if by_hour else ""}) c
                WHERE {whole("s.")}"""  # nosec B608 - names from code
        return f"""SELECT o.member_id AS member_id, {measures} FROM crm_order o
            WHERE {condition}{member_filter_sql(full, "o.member_id", only=whole())}
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
    tables_drop(cursor, "seg_hours", "seg_days")
    stored_copy(
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
    hour, day = local_hour_sql(), local_day_sql()
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
    tables_analyze(cursor, "seg_dhours", "seg_ddays")
    cursor.execute(
        f"""CREATE TEMP TABLE seg_dhabits AS
            SELECT m.member_id AS member_id, m.usual_order_hour AS hour, m.repeat_days AS repeat_days, m.first_order_at AS first_order_at,
                m.hour_orders + COALESCE(SUM(CASE WHEN d.hour = m.usual_order_hour THEN d.d END), 0) AS c,
                CASE WHEN m.next_hour_orders < m.hour_orders - 1 THEN m.next_hour_orders ELSE m.hour_orders - 1 END
                    + COALESCE(MAX(CASE WHEN d.hour < m.usual_order_hour AND d.d > 0 THEN d.d END), 0) AS earlier,
                m.next_hour_orders + COALESCE(MAX(CASE WHEN d.hour > m.usual_order_hour AND d.d > 0 THEN d.d END), 0) AS later,
                COALESCE(MAX(d.d), 0) AS added
            FROM {SCOPE} s JOIN {STORED} m ON m.member_id = s.member_id LEFT JOIN seg_dhours d ON d.member_id = s.member_id
            WHERE {taken_sql(base)} AND m.hour_orders IS NOT NULL
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
    tables_drop(cursor, "seg_dhours", "seg_ddays", "seg_dhabits")
