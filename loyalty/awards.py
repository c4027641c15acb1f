"""How the ledgers earn: one set-based settle, for everyone or for some members.

A settle compares, for every (rule, source), what the rules say the source
earns (its target) with what the ledger holds for it (the sum of its entries)
and appends the difference as one new entry with the next sequence number:

- a source with a target and nothing held (a new member, order or event; a
  refunded order paid again) is awarded the amount of the rule in force on
  the source's business date (EarningRule.effective_from/until);
- a source held but no longer eligible (a refunded order; a first order
  whose award passed to the next paid order when it was refunded) is
  reversed to zero. The reversal carries the award's business time (and, for
  points, its availability and expiry), so that a sum "as of day D" agrees
  with the orders as they stand, and pending and expiring points net out;
- a source changed since its latest entry (an order's amount or an event's
  count corrected by file, API or admin: its Order/EngagementEvent.changed_at
  differs from the source_version its entries recorded) whose target differs
  from what it holds gets the difference;
- any other source whose held amount differs from its target (a rule's
  amount edited in place) is left alone: history is never rewritten silently.
  reprice=True (the re-award, previewed first) writes those differences too;
- an order moved to another member (a corrected import, an edit in the
  admin) is first reversed for the member who holds it, and a source whose
  business time was corrected (an order's date, an event's time, a
  registration time filled in) is first reversed at its old time
  (misplaced_reverse); either is then awarded as any source with nothing
  held, to its member at its time. What a source holds is the sum over all
  members; the member it is held by is the one of its latest entry, and its
  business time the one at which its entries do not net to zero.

Expiry (expiry_settle) is settled the same way, after the awards: per member
and expiry day that has come, the difference between what should have
expired there (oldest lots first, net of their reversals) and what the
ledger has expired, so that a lot changed after its expiry day (a late
refund, an order imported late) is expired again, not taken twice or never.

Settles take turns (loyalty.services holds a lock), so each reads what the
one before wrote and a settle that repeats finds nothing to write. The unique
(rule, source, seq) key is the proof: a second award of a source could not
slip in, it would fail loudly. So a scoped settle reads every entry of its
sources: moved orders are changed orders (Order.changed_at), and the members
who held a changed order of the scope before join the scope (misplaced_reverse).
Plain INSERTs: a first award writes tens of millions of rows, and ON
CONFLICT's speculative insertion costs each of them.
One transaction holds the entries and the balances they change (balances.py).

Points of an order: floor(amount) x points per yuan x the multiplier of the
member's tier at the order's time (his last tier change at or before it; 1
before any), floored. Pending until the order's local date + the return
window, then available; expiring at the end of the order's calendar year +
expiry_years (Asia/Shanghai).

SQL here is assembled from fixed fragments and our own table names; every
value is a parameter (bandit B608 is marked)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from crm.models import EngagementKind, OrderStatus
from loyalty.models import RULE_LEDGER, EarningRule, Ledger, LoyaltySettings, RuleCode, SourceKind, TierPoints
from segments.days import local_midnight

SCOPE = "loyalty_scope"  # temp table of the member ids a scoped settle covers
FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)
# An entry's source_version for a source never changed (changed_at empty): a value, so that an
# entry of a source read before its first change is told from one written before the column was.
NEVER_CHANGED = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _sql(postgres: str, sqlite: str) -> str:
    return postgres if connection.vendor == "postgresql" else sqlite


def _local_sql(column: str) -> str:
    """The column's local wall-clock time (Asia/Shanghai has had no daylight saving since 1991)."""
    return _sql(f"({column} AT TIME ZONE '{settings.TIME_ZONE}')", f"datetime({column}, '+8 hours')")


def _available_sql(local: str) -> str:
    """Local midnight of the local date + %s days, as an instant."""
    return _sql(
        f"((date_trunc('day', {local}) + make_interval(days => CAST(%s AS INTEGER))) AT TIME ZONE '{settings.TIME_ZONE}')",
        f"datetime(date({local}), '+' || %s || ' days', '-8 hours')",
    )


def _expires_sql(local: str) -> str:
    """Local midnight of 1 January of the local year + 1 + %s (the end of that year + %s), as an instant."""
    return _sql(
        f"((date_trunc('year', {local}) + make_interval(years => 1 + CAST(%s AS INTEGER))) AT TIME ZONE '{settings.TIME_ZONE}')",
        f"datetime((CAST(strftime('%%Y', {local}) AS INTEGER) + 1 + %s) || '-01-01', '-8 hours')",
    )


def rule_periods(codes) -> tuple[str, list]:
    """The rules as (code, amount, starts, ends) rows: each row lasts until its own end or the next row's start."""
    rows = []
    by_code: dict[str, list[EarningRule]] = {}
    for rule in EarningRule.objects.filter(code__in=codes).order_by("code", "effective_from"):
        by_code.setdefault(rule.code, []).append(rule)
    for code, rules in by_code.items():
        for n, rule in enumerate(rules):
            ends = [local_midnight(d) for d in (rule.effective_until, rules[n + 1].effective_from if n + 1 < len(rules) else None) if d]
            rows.append((code, rule.amount, local_midnight(rule.effective_from), min(ends) if ends else FAR_FUTURE))
    if not rows:
        never = _sql("CAST(NULL AS TIMESTAMPTZ)", "NULL")
        return f"SELECT '' AS code, 0 AS amount, {never} AS starts, {never} AS ends WHERE 1 = 0", []
    sql = " UNION ALL ".join("SELECT %s AS code, CAST(%s AS BIGINT) AS amount, %s AS starts, %s AS ends" for _row in rows)
    return sql, [value for row in rows for value in row]


def _multiplier_sql() -> tuple[str, list]:
    """The tier multiplier at the order's time, in hundredths; a constant when every tier has the same."""
    multipliers = {tier_id: int(m * 100) for tier_id, m in TierPoints.objects.values_list("tier_id", "multiplier")}
    values = set(multipliers.values()) | {100}
    if len(values) == 1:
        return "100", []
    # The tier at the order's time: the member's last tier change at or before it (a tier without a
    # multiplier row, and no change yet: 1.0).
    cases = " ".join("WHEN %s THEN %s" for _tier in multipliers)
    return (
        f"COALESCE((SELECT CASE tc.to_tier_id {cases} ELSE 100 END FROM segments_tierchange tc "  # nosec B608 - fixed fragments
        "WHERE tc.member_id = r.member_id AND tc.at <= r.occurred_at ORDER BY tc.at DESC, tc.id DESC LIMIT 1), 100)",
        [value for item in multipliers.items() for value in item],
    )


def member_rows(table: str, where: str, scoped: bool) -> str:
    """A FROM item: the rows of table (x in where) that match where, of the members in scope or of all.

    Scoped, on PostgreSQL, one LATERAL subquery per member in scope, served by the table's
    member index: as a semi-join, the planner hashed the scope and read all 20M orders and
    both ledgers for a night's 20,000 members (31.9 s). OFFSET 0 keeps the subquery from
    being flattened back into that join. SQLite looks the members up by index by itself."""
    if not scoped:
        return f"(SELECT x.* FROM {table} x WHERE {where})"  # nosec B608 - our own table names and fragments
    if connection.vendor == "postgresql":
        return f"{SCOPE} s CROSS JOIN LATERAL (SELECT x.* FROM {table} x WHERE x.member_id = s.member_id AND {where} OFFSET 0)"  # nosec B608
    return f"(SELECT x.* FROM {table} x WHERE x.member_id IN (SELECT member_id FROM {SCOPE}) AND {where})"  # nosec B608


def registered_sql(member: str) -> str:
    """The business time of a member's registration: his registration time, or where none is known,
    the earliest evidence of him, his first order (of any status) or else when he was recorded."""
    return f"""COALESCE({member}.registered_at,
                        (SELECT MIN(o.ordered_at) FROM crm_order o WHERE o.member_id = {member}.id AND o.ordered_at < {member}.created_at),
                        {member}.created_at)"""  # nosec B608 - an alias of our own


def growth_targets(scoped: bool) -> tuple[str, list]:
    """(member_id, rule, source_kind, source_id, occurred_at, amount, available_at, expires_at, version) of
    every source that earns growth value now; version: the source's changed_at as read (registrations: none)."""
    periods, period_params = rule_periods([RuleCode.REGISTER, RuleCode.FIRST_ORDER, RuleCode.REPEAT_ORDER, RuleCode.SHARE, RuleCode.UGC])
    members_in_scope = f"m.id IN (SELECT member_id FROM {SCOPE})" if scoped else "1 = 1"  # nosec B608 - a fixed table name
    raw = f"""
        SELECT m.id AS member_id, %s AS rule, %s AS source_kind, m.id AS source_id,
               {registered_sql("m")} AS occurred_at, 1 AS qty, {_sql("CAST(NULL AS TIMESTAMPTZ)", "NULL")} AS version
          FROM crm_member m WHERE {members_in_scope}
        UNION ALL
        SELECT o.member_id, CASE WHEN ROW_NUMBER() OVER (PARTITION BY o.member_id ORDER BY o.ordered_at, o.id) = 1
                                 THEN %s ELSE %s END, %s, o.id, o.ordered_at, 1, COALESCE(o.changed_at, %s)
          FROM {member_rows("crm_order", "x.status = %s", scoped)} o
        UNION ALL
        SELECT e.member_id, e.kind, %s, e.id, e.occurred_at, e.count, COALESCE(e.changed_at, %s)
          FROM {member_rows("crm_engagementevent", "x.kind IN (%s, %s)", scoped)} e
    """  # nosec B608
    raw_params = [
        RuleCode.REGISTER, SourceKind.REGISTRATION,
        RuleCode.FIRST_ORDER, RuleCode.REPEAT_ORDER, SourceKind.ORDER, NEVER_CHANGED, OrderStatus.PAID,
        SourceKind.EVENT, NEVER_CHANGED, EngagementKind.SHARE, EngagementKind.UGC,
    ]
    sql = f"""
        SELECT r.member_id, r.rule, r.source_kind, r.source_id, r.occurred_at,
               COALESCE(p.amount, 0) * r.qty AS amount, NULL AS available_at, NULL AS expires_at, r.version
          FROM ({raw}) r
          LEFT JOIN ({periods}) p ON p.code = r.rule AND r.occurred_at >= p.starts AND r.occurred_at < p.ends
    """  # nosec B608
    return sql, [*raw_params, *period_params]


def points_targets(scoped: bool, policy: LoyaltySettings) -> tuple[str, list]:
    """As growth_targets, for the points of every paid order."""
    periods, period_params = rule_periods([RuleCode.ORDER_POINTS])
    multiplier, multiplier_params = _multiplier_sql()
    raw = f"""SELECT o.member_id, o.id AS source_id, o.ordered_at AS occurred_at, o.amount AS amount,
                     {_local_sql("o.ordered_at")} AS local_at, COALESCE(o.changed_at, %s) AS version
                FROM {member_rows("crm_order", "x.status = %s", scoped)} o"""  # nosec B608
    # Whole yuan times points per yuan, times the multiplier in hundredths when tiers differ.
    amount = (
        "CAST(FLOOR(r.amount) AS BIGINT) * COALESCE(p.amount, 0)" if not multiplier_params
        else f"CAST(FLOOR(FLOOR(r.amount) * COALESCE(p.amount, 0) * {multiplier} / 100.0) AS BIGINT)"
    )
    sql = f"""
        SELECT r.member_id, %s AS rule, %s AS source_kind, r.source_id, r.occurred_at, {amount} AS amount,
               {_available_sql("r.local_at")} AS available_at, {_expires_sql("r.local_at")} AS expires_at, r.version
          FROM ({raw}) r
          LEFT JOIN ({periods}) p ON p.code = %s AND r.occurred_at >= p.starts AND r.occurred_at < p.ends
    """  # nosec B608
    params = [
        RuleCode.ORDER_POINTS, SourceKind.ORDER, *multiplier_params,
        policy.return_days, policy.expiry_years,
        NEVER_CHANGED, OrderStatus.PAID, *period_params, RuleCode.ORDER_POINTS,
    ]
    return sql, params


@dataclass
class Moves:
    """What a settle writes (or, previewed, would write) to one ledger."""

    entries: int = 0
    members: int = 0
    amount: int = 0

    def __add__(self, other: Moves) -> Moves:
        return Moves(self.entries + other.entries, self.members + other.members, self.amount + other.amount)


TABLES = {Ledger.GROWTH: "loyalty_growthentry", Ledger.POINTS: "loyalty_pointsentry"}
# The member of a source's latest entry, in one aggregate: MAX(seq * PACK + member_id) % PACK
# (member ids stay below 2^40).
PACK = 1 << 40
ORDER_RULES = {Ledger.GROWTH: [RuleCode.FIRST_ORDER, RuleCode.REPEAT_ORDER], Ledger.POINTS: [RuleCode.ORDER_POINTS]}


def _sources_now(ledger: str, scoped: bool, moved_only: bool) -> list[tuple[str, list[str], str]]:
    """(source kind, its rules, a SELECT of (id, member_id, at)): where the sources that may have moved
    or been re-dated stand now, of the members in scope or of all. The orders ever changed (a move or
    an edit is a change) and, for growth value, the events ever changed and every registration (a
    registration time filled in or corrected leaves no mark). Events and registrations never move."""
    def select(table: str, member: str, at: str, where: str) -> str:
        in_scope = f" AND {member} IN (SELECT member_id FROM {SCOPE})" if scoped else ""  # nosec B608 - a fixed table name
        return f"SELECT x.id, {member} AS member_id, {at} AS at FROM {table} x WHERE {where}{in_scope}"  # nosec B608 - fixed fragments

    sources = [(SourceKind.ORDER, ORDER_RULES[ledger], select("crm_order", "x.member_id", "x.ordered_at", "x.changed_at IS NOT NULL"))]
    if ledger == Ledger.GROWTH and not moved_only:
        sources += [
            (SourceKind.EVENT, [RuleCode.SHARE, RuleCode.UGC],
             select("crm_engagementevent", "x.member_id", "x.occurred_at", "x.changed_at IS NOT NULL")),
            (SourceKind.REGISTRATION, [RuleCode.REGISTER], select("crm_member", "x.id", registered_sql("x"), "1 = 1")),
        ]
    return sources


def _misplaced(ledger: str, scoped: bool, *, moved_only: bool = False) -> tuple[str, list]:
    """FROM item (e): the entries of those sources that sit where the source no longer is: with a
    member other than its own (an order moved) or, unless moved_only, at a business time other than
    its own (an order's or event's time corrected, a registration time filled in)."""
    misplaced = "e.member_id <> s.member_id" if moved_only else "(e.member_id <> s.member_id OR e.occurred_at <> s.at)"
    parts, params = [], []
    for kind, rules, select in _sources_now(ledger, scoped, moved_only):
        parts.append(f"""SELECT e.* FROM ({select}) s
                           JOIN {TABLES[ledger]} e ON e.rule IN ({", ".join(["%s"] * len(rules))}) AND e.source_kind = %s
                                                  AND e.source_id = s.id
                          WHERE {misplaced}""")  # nosec B608 - fixed fragments
        params += [*rules, kind]
    return f"({' UNION ALL '.join(parts)}) e", params


def misplaced_reverse(cursor, *, scoped: bool, now: dt.datetime) -> int:
    """Reverse what is held of a source where it no longer is; return the entries written.

    Moved away (an order moved to another member): the old holder's share is reversed, and the
    settle then awards the new member as any source with nothing held. Re-dated: the award at
    the old business time is reversed (with, for points, its old availability and expiry), and
    the settle awards again at the new one, so that a sum "as of day D" and a lot's expiry follow
    the source as it stands. Each (member, business time) a source is held at is reversed by one
    entry carrying that time.

    Scoped, the members who ever held a changed order of a member in scope join the scope first:
    their balances change, and the settle must read all of a source's entries (its next sequence
    number, what it holds). Found through the changed orders (a partial index), never a scan of
    the ledgers; few orders ever change."""
    if scoped:
        for ledger in TABLES:
            held, params = _misplaced(ledger, scoped, moved_only=True)
            cursor.execute(
                f"""INSERT INTO {SCOPE} (member_id) SELECT DISTINCT e.member_id FROM {held}
                     WHERE NOT EXISTS (SELECT 1 FROM {SCOPE} s WHERE s.member_id = e.member_id)""",  # nosec B608
                params,
            )
    written = 0
    for ledger, table in TABLES.items():
        held, params = _misplaced(ledger, scoped)
        dates = ", MIN(e.available_at), MIN(e.expires_at)" if ledger == Ledger.POINTS else ""
        cursor.execute(
            f"""INSERT INTO {table} ({_columns(ledger)})
                SELECT e.member_id, -SUM(e.amount), e.rule, e.source_kind, e.source_id,
                       (SELECT MAX(x.seq) FROM {table} x WHERE x.rule = e.rule AND x.source_kind = e.source_kind
                                                           AND x.source_id = e.source_id)
                       + ROW_NUMBER() OVER (PARTITION BY e.rule, e.source_kind, e.source_id ORDER BY e.member_id, e.occurred_at),
                       e.occurred_at, %s{dates}
                  FROM {held}
                 GROUP BY e.rule, e.source_kind, e.source_id, e.member_id, e.occurred_at
                HAVING SUM(e.amount) <> 0""",  # nosec B608
            [now, *params],
        )
        written += max(cursor.rowcount, 0)
    return written


def expiry_settle(cursor, *, scoped: bool, now: dt.datetime, after_settle: bool = False) -> int:
    """Bring the expiries up to date for the members in scope (or everyone); return the entries written.

    Per member and expiry day that has come (a local 1 January midnight), one entry of the
    difference between what the ledger has expired there and what should have: the points_expire
    run of that day, or later the correction of it when a lot changed after it ran (a refund
    reversing points that had already expired: they never existed, so they are given back
    before the reversal takes them; an order imported late whose points are already past their
    expiry: they expire at once). Each correction takes the expiry day's next sequence number.

    What should have expired by the k-th expiry day c_k, spending the oldest lots first, is
    T_k = max(0, max over j <= k of (the lots expiring by c_j + what was spent before c_j)), lots
    net of their reversals, spent = redemptions and deductions (negative); at c_k itself,
    T_k - T_(k-1). Spending after c_j cannot take points that expired at c_j.

    after_settle, scoped: only when the settle just written (recorded now) touched a lot past its
    expiry day; otherwise nothing of what had expired can have changed (a new expiry day is
    points_expire's, and a full settle looks at everyone), and the members' ledgers are not read
    again: one member's update after an order stays a few index reads."""
    if after_settle and scoped:
        cursor.execute(
            f"SELECT 1 FROM {member_rows('loyalty_pointsentry', 'x.recorded_at = %s AND x.expires_at <= %s', scoped)} e LIMIT 1",  # nosec B608
            [now, now],
        )
        if cursor.fetchone() is None:
            return 0
    corrections, params = _expiry_corrections(scoped, now)
    day_number = _sql(
        f"CAST(to_char(d.cutoff AT TIME ZONE '{settings.TIME_ZONE}', 'YYYYMMDD') AS INTEGER)",
        "CAST(strftime('%%Y%%m%%d', datetime(d.cutoff, '+8 hours')) AS INTEGER)",
    )
    cursor.execute(
        f"""INSERT INTO loyalty_pointsentry ({_columns(Ledger.POINTS)})
            SELECT d.member_id, d.expired - d.due, %s, %s, d.member_id, COALESCE(d.seq + 1, {day_number}),
                   d.cutoff, %s, d.cutoff, NULL
              FROM ({corrections}) d""",  # nosec B608 - fixed fragments; values are parameters
        [RuleCode.EXPIRY, SourceKind.EXPIRY, now, *params],
    )
    return max(cursor.rowcount, 0)


def expiry_unwritten(cursor, *, now: dt.datetime) -> int:
    """The points of the members in scope whose expiry day has come but whose expiry is not
    written yet (between midnight on 1 January and the expiry run): what expiry_settle would
    take (positive), read without writing. A redemption must not spend them."""
    corrections, params = _expiry_corrections(True, now)
    cursor.execute(f"SELECT COALESCE(SUM(d.due - d.expired), 0) FROM ({corrections}) d", params)  # nosec B608
    return int(cursor.fetchone()[0])


def last_expiry_day(now: dt.datetime) -> dt.datetime:
    """The last 1 January midnight (local) that has come by now: the end of a calendar year, when points expire."""
    return local_midnight(dt.date(timezone.localtime(now).year, 1, 1))


def _expiry_corrections(scoped: bool, now: dt.datetime) -> tuple[str, list]:
    """Per member and expiry day that has come, what should have expired there (due) against what
    the ledger has expired (expired), where they differ, with the day's last sequence number (seq)."""
    latest = last_expiry_day(now)
    rows = member_rows("loyalty_pointsentry", "(x.expires_at <= %s OR (x.expires_at IS NULL AND x.occurred_at <= %s))", scoped)
    expiry = RuleCode.EXPIRY.value
    sql = f"""SELECT d.member_id, d.cutoff, d.expired, d.due, d.seq
              FROM (
                SELECT r.member_id, r.cutoff, r.expired, r.seq,
                       r.reached - LAG(r.reached, 1, 0) OVER (PARTITION BY r.member_id ORDER BY r.cutoff) AS due
                  FROM (
                    SELECT c.member_id, c.cutoff, c.expired, c.seq,
                           MAX(CASE WHEN c.lots + c.spent > 0 THEN c.lots + c.spent ELSE 0 END)
                               OVER (PARTITION BY c.member_id ORDER BY c.cutoff ROWS UNBOUNDED PRECEDING) AS reached
                      FROM (
                        SELECT b.member_id, b.cutoff, b.expired, b.seq,
                               SUM(b.lots) OVER (PARTITION BY b.member_id ORDER BY b.cutoff ROWS UNBOUNDED PRECEDING) AS lots,
                               SUM(b.spent) OVER (PARTITION BY b.member_id ORDER BY b.cutoff ROWS UNBOUNDED PRECEDING) AS spent
                          FROM (
                            SELECT a.member_id, a.cutoff,
                                   SUM(CASE WHEN a.kind = 'lot' THEN a.amount ELSE 0 END) AS lots,
                                   SUM(CASE WHEN a.kind = 'spent' THEN a.amount ELSE 0 END) AS spent,
                                   -SUM(CASE WHEN a.kind = 'expired' THEN a.amount ELSE 0 END) AS expired,
                                   MAX(CASE WHEN a.kind = 'expired' THEN a.seq END) AS seq
                              FROM (
                                SELECT e.member_id, e.amount, e.seq,
                                       CASE WHEN e.expires_at IS NOT NULL THEN 'lot' WHEN e.rule = '{expiry}' THEN 'expired' ELSE 'spent' END AS kind,
                                       CASE WHEN e.expires_at IS NOT NULL THEN e.expires_at WHEN e.rule = '{expiry}' THEN e.occurred_at
                                            ELSE {_expires_sql(_local_sql("e.occurred_at"))} END AS cutoff
                                  FROM {rows} e
                              ) a
                             GROUP BY a.member_id, a.cutoff
                          ) b
                         WHERE b.cutoff <= %s
                      ) c
                  ) r
              ) d
             WHERE d.due <> d.expired"""  # nosec B608 - fixed fragments; values are parameters
    # What was spent goes to the expiry day after it: the end of its own year (0 more years).
    return sql, [0, now, latest, now]


# Whether source t is another version of the source than its latest entries h read: then its target
# differs because the source does (a corrected amount or count), not a rule. h.version is the latest
# version an entry recorded; entries written before they recorded one are compared by time, as then.
CHANGED_SINCE_HELD = "(t.version <> h.version OR (h.version IS NULL AND t.version > h.recorded_at))"


def _held_at(table: str, column: str) -> str:
    """The business time (or availability, expiry) of what source h still holds: that of its entries
    at the one business time whose sum is not zero (a source re-dated holds nothing at its old
    time). Looked up only for a reversal (COALESCE stops at a target's own)."""
    return f"""(SELECT MIN(x.{column}) FROM {table} x
                 WHERE x.rule = h.rule AND x.source_kind = h.source_kind AND x.source_id = h.source_id
                 GROUP BY x.occurred_at HAVING SUM(x.amount) <> 0 ORDER BY x.occurred_at LIMIT 1)"""  # nosec B608


def _decisions(ledger: str, targets: str, scoped: bool, reprice: bool, now: dt.datetime) -> tuple[str, list]:
    """The entries to append: awards, reversals and (reprice) differences.

    On PostgreSQL one FULL JOIN of targets and held, each read once: it then streams the
    targets instead of materialising them (a CTE read twice is written out first,
    19M rows to temporary files on a first award). SQLite plans a FULL JOIN as a
    nested loop without an index (every target scans every held source: minutes for a
    few thousand members once they have ledgers), so there the same rows come from two
    LEFT JOINs, each of which it looks up through an automatic index."""
    table = TABLES[ledger]
    rules = [code for code, owner in RULE_LEDGER.items() if owner == ledger]
    points = ledger == Ledger.POINTS
    dates = f", COALESCE(t.available_at, {_held_at(table, 'available_at')}), COALESCE(t.expires_at, {_held_at(table, 'expires_at')})" if points else ""
    award = "t.amount <> COALESCE(h.total, 0)" if reprice else f"""(COALESCE(h.total, 0) = 0 AND t.amount > 0)
            OR (h.total <> 0 AND t.amount <> h.total AND {CHANGED_SINCE_HELD})"""
    select = f"""SELECT COALESCE(t.member_id, h.member_id) AS member_id, COALESCE(t.amount, 0) - COALESCE(h.total, 0) AS amount,
               COALESCE(t.rule, h.rule) AS rule, COALESCE(t.source_kind, h.source_kind) AS source_kind,
               COALESCE(t.source_id, h.source_id) AS source_id, COALESCE(h.seq + 1, 0) AS seq,
               COALESCE(t.occurred_at, {_held_at(table, 'occurred_at')}) AS occurred_at, %s AS recorded_at{dates},
               t.version AS source_version"""  # nosec B608
    on = "h.rule = t.rule AND h.source_kind = t.source_kind AND h.source_id = t.source_id"
    joined = _sql(
        f"""
          FULL JOIN held h ON {on}
         WHERE (t.rule IS NOT NULL AND ({award}))  -- an award (or, repriced, a difference)
            OR (t.rule IS NULL AND h.total <> 0)    -- no longer earned: the reversal
        """,
        f"""
          LEFT JOIN held h ON {on}
         WHERE {award}                             -- an award (or, repriced, a difference)
         UNION ALL
        {select}
          FROM held h
          LEFT JOIN targets t ON {on}
         WHERE t.rule IS NULL AND h.total <> 0     -- no longer earned: the reversal
        """,  # nosec B608 - fixed fragments
    )
    sql = f"""
        WITH targets AS ({targets}),
        held AS (
            SELECT e.rule, e.source_kind, e.source_id, MAX(e.seq * {PACK} + e.member_id) %% {PACK} AS member_id,
                   SUM(e.amount) AS total, MAX(e.seq) AS seq, MAX(e.recorded_at) AS recorded_at,
                   MAX(e.source_version) AS version
              FROM {member_rows(table, f"x.rule IN ({', '.join(['%s'] * len(rules))})", scoped)} e
             GROUP BY e.rule, e.source_kind, e.source_id
        )
        {select}
          FROM targets t
        {joined}
    """  # nosec B608
    # SQLite's form reads the select, and its recorded_at parameter, twice.
    return sql, [*rules, now] if connection.vendor == "postgresql" else [*rules, now, now]


def _columns(ledger: str, *, versioned: bool = False) -> str:
    base = "member_id, amount, rule, source_kind, source_id, seq, occurred_at, recorded_at"
    return base + (", available_at, expires_at" if ledger == Ledger.POINTS else "") + (", source_version" if versioned else "")


def ledger_settle(cursor, ledger: str, *, scoped: bool, reprice: bool = False, preview: bool = False, now: dt.datetime | None = None) -> Moves:
    now = now or timezone.now()
    policy = LoyaltySettings.current()
    targets, target_params = growth_targets(scoped) if ledger == Ledger.GROWTH else points_targets(scoped, policy)
    decisions, decision_params = _decisions(ledger, targets, scoped, reprice, now)
    params = [*target_params, *decision_params]
    if preview:
        cursor.execute(f"SELECT COUNT(*), COUNT(DISTINCT member_id), COALESCE(SUM(amount), 0) FROM ({decisions}) d", params)  # nosec B608
        entries, members, amount = cursor.fetchone()
        return Moves(entries, members, int(amount))
    cursor.execute(f"INSERT INTO {TABLES[ledger]} ({_columns(ledger, versioned=True)}) SELECT * FROM ({decisions}) d", params)  # nosec B608
    return Moves(entries=max(cursor.rowcount, 0))
