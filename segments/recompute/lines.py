"""Stage 3, order lines: favourite and second category, promo share (seg_cat),
whole for a full run, as a delta of the window's edges for a nightly one."""

from __future__ import annotations

from crm.models import OrderStatus
from segments.recompute.base import (
    READ_ALL,
    SCOPE,
    STORED,
    Bounds,
    cents_sql,
    distinct_sql,
    scoped_on_postgres,
    stored_copy,
    tables_analyze,
    tables_drop,
)
from segments.recompute.scope import CHANGED, taken_sql

LINE_SUMS = ("value_cents", "promo_cents", "first_cents", "second_cents", "others_cents")


def _line_sums() -> str:
    """The value and promo value of order lines l, in fen."""
    value = "l.quantity * l.unit_price"
    return f"""{cents_sql(value)} AS value_cents, {cents_sql(f"CASE WHEN l.is_promo THEN {value} ELSE 0 END")} AS promo_cents"""


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
    if not scoped_on_postgres(full):
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
    stored_copy(
        cursor,
        "seg_cat",
        {
            "first_category": "m.favourite_category_id", "second_category": "m.second_category_id", "promo_share": "m.promo_share",
            "value_cents": "m.lines_value_cents", "promo_cents": "m.lines_promo_cents", "first_cents": "m.favourite_cents",
            "second_cents": "m.second_cents", "others_cents": "m.others_cents", "lines_as_of": "m.lines_as_of", "lines_order_id": "m.lines_order_id",
        },
        stored,
    )
    tables_analyze(cursor, "seg_cat")


def _lines_delta(cursor, bounds: Bounds, base: Bounds) -> None:
    """Into seg_cat, the members taken by difference (taken_sql) whose
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
    tables_analyze(cursor, "seg_dcat")
    other = f"d.category_id {distinct_sql()} m.favourite_category_id AND d.category_id {distinct_sql()} m.second_category_id"
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
            WHERE {taken_sql(base)}
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
    tables_drop(cursor, "seg_dcat", "seg_dsum")
