"""Stage 8, circles: each active circle's rules evaluated over the run's
scope (one pass of LEFT joins where the rules allow, else circle by circle),
and the memberships synchronised."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models.expressions import RawSQL
from django.utils import timezone

from segments.circles import circle_queryset
from segments.models import Circle, CircleMembership
from segments.recompute.base import (
    SCOPE,
    member_filter_sql,
    tables_analyze,
    tables_drop,
)
from segments.recompute.scope import past_day_end

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

    until = past_day_end(as_of, timezone.localdate())  # the line the rules' own filter draws
    line = v_score_threshold(float(circle.rules["v_top_percent"]), until=until) if "v_top_percent" in circle.rules else None
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


def circles_write(cursor, circles: Sequence[Circle], as_of: dt.date, full: bool, now: dt.datetime, at: dt.datetime | None = None) -> None:
    """Materialise each active circle for the members in scope: add who now
    matches (since now), remove who no longer does.

    A full run writes circle by circle (each match a scan of a million
    members); a scoped run evaluates every circle in one pass over the
    scope's rows (seg_hits) and writes them at once."""
    scope_clause = member_filter_sql(full)
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
        _memberships_sync(cursor, ids, union, params, scope_clause, at or now)
    if passed:
        tables_drop(cursor, "seg_hits")
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
        tables_analyze(cursor, "seg_circled", "seg_held")  # it hash-joins the two
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
    tables_drop(cursor, "seg_circled", "seg_held")
