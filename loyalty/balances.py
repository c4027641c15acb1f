"""A member's balances as stored projections of the ledgers, and the check that they agree.

At a moment T (the balance's computed_at):
- growth: the sum of the growth entries;
- points: the sum of the points entries; pending: of those not yet available
  at T (an award and its reversal carry the same dates, so they net out);
  available = points - pending;
- expiring (within 30 days of T): what is left of the lots that expire by T +
  30 days once everything spent is taken from the oldest lots first. Lots
  expire in the order they were earned, so that is the sum of those lots plus
  every entry without an expiry (redemptions, expiries, deductions: all
  negative), and never below zero.

The same sums write the balances (refresh) and recompute them for the
check (loyalty_check), each at the balance's own moment. A balance also
records when its pending points next become available (pending_until).

What members and staff are shown at a later moment (balance_at, and the
standing API's one query) is the stored row, except across the midnights its
runs have not reached yet: after a 1 January midnight, before the expiry run,
without what it counted as expiring (expired_since); past its pending_until,
before the 00:05 run refreshes it, with the pending points read from the
ledger (pending_stale, pending_of)."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from loyalty.awards import SCOPE, last_expiry_day, member_rows
from loyalty.models import Balance, PointsEntry
from segments.days import local_midnight

SCOPE_IDS = f"SELECT member_id FROM {SCOPE}"  # nosec B608 - a fixed table name
EXPIRING_DAYS = 30
EXPIRING = "CASE WHEN COALESCE(p.due, 0) + COALESCE(p.spent, 0) > 0 THEN COALESCE(p.due, 0) + COALESCE(p.spent, 0) ELSE 0 END"


def _growth_sums(scoped: bool) -> str:
    return f"SELECT e.member_id, SUM(e.amount) AS total FROM {member_rows('loyalty_growthentry', '1 = 1', scoped)} e GROUP BY e.member_id"  # nosec B608


def _points_sums(moment: str, horizon: str, rows: str, join: str = "") -> str:
    """Per member: total, pending at moment, lots due by horizon, and everything spent."""
    return f"""SELECT e.member_id, SUM(e.amount) AS total,
                      SUM(CASE WHEN e.available_at > {moment} THEN e.amount ELSE 0 END) AS pending,
                      MIN(CASE WHEN e.available_at > {moment} THEN e.available_at END) AS pending_until,
                      SUM(CASE WHEN e.expires_at <= {horizon} THEN e.amount ELSE 0 END) AS due,
                      SUM(CASE WHEN e.expires_at IS NULL THEN e.amount ELSE 0 END) AS spent
                 FROM {rows} e {join} GROUP BY e.member_id"""  # nosec B608


def _scope_sql(scoped: bool) -> str:
    """The members whose balances a refresh writes: those in scope, or every member (a member
    table scan, not a union of two ledgers of tens of millions of rows)."""
    return SCOPE_IDS if scoped else "SELECT id AS member_id FROM crm_member"


def balances_refresh(cursor, *, scoped: bool, now: dt.datetime | None = None) -> int:
    """Write the balances of the members in scope (or of everyone with an entry) as of now."""
    now = now or timezone.now()
    scope = _scope_sql(scoped)
    cursor.execute(
        f"""INSERT INTO loyalty_balance (member_id, growth, points, pending, expiring, computed_at, pending_until)
            SELECT s.member_id, COALESCE(g.total, 0), COALESCE(p.total, 0), COALESCE(p.pending, 0), {EXPIRING}, %s,
                   CASE WHEN p.pending <> 0 THEN p.pending_until END
              FROM ({scope}) s
              LEFT JOIN ({_growth_sums(scoped)}) g ON g.member_id = s.member_id
              LEFT JOIN ({_points_sums("%s", "%s", member_rows("loyalty_pointsentry", "1 = 1", scoped))}) p ON p.member_id = s.member_id
             WHERE 1 = 1
            ON CONFLICT (member_id) DO UPDATE SET growth = excluded.growth, points = excluded.points,
                pending = excluded.pending, expiring = excluded.expiring, computed_at = excluded.computed_at,
                pending_until = excluded.pending_until""",  # nosec B608
        [now, now, now, now + dt.timedelta(days=EXPIRING_DAYS)],
    )
    return cursor.rowcount


def expired_since(computed_at: dt.datetime, expiring: int, now: dt.datetime) -> int:
    """Of a balance stored at computed_at, the points gone by now without the balance knowing:
    when a 1 January midnight has come since, within the 30 days its expiring counts, those
    points expired there. From midnight until the expiry run (points_expire, 00:10) writes
    them off and refreshes the balance, the member is shown without them, as a redemption
    refuses them (awards.expiry_unwritten). 0 otherwise."""
    new_year = last_expiry_day(now)
    if computed_at < new_year <= now and computed_at >= new_year - dt.timedelta(days=EXPIRING_DAYS):
        return expiring
    return 0


def pending_stale(computed_at: dt.datetime, pending: int, pending_until: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether some of a stored balance's pending points have become available since it was computed:
    its pending_until has come (a local midnight: an order's date + the return window), and the run
    that refreshes those balances (pending_release, 00:05) has not yet; or, for a balance computed
    before it recorded pending_until, a midnight has passed since."""
    if pending <= 0:
        return False
    if pending_until is not None:
        return pending_until <= now
    return computed_at < local_midnight(timezone.localdate(now))


def pending_of(member_ids: list[int], now: dt.datetime) -> dict[int, int]:
    """The points of these members still pending at now, from their ledgers (by the member index)."""
    still = PointsEntry.objects.filter(member_id__in=member_ids, available_at__gt=now).order_by()
    totals = still.values("member_id").annotate(total=Sum("amount")).values_list("member_id", "total")
    return dict.fromkeys(member_ids, 0) | {member_id: int(total) for member_id, total in totals}  # PostgreSQL sums to numeric


def shown(points: int, pending: int, expiring: int, computed_at: dt.datetime, now: dt.datetime,
          pending_now: int | None = None) -> tuple[int, int, int]:
    """(points, pending, expiring) of a balance stored at computed_at as a member is shown them at
    now: without the points expired since (expired_since), and with pending_now, what the ledger
    says is pending now, when the caller read it for a row that is pending_stale (None: the row's)."""
    gone = expired_since(computed_at, expiring, now)
    return points - gone, pending if pending_now is None else pending_now, expiring - gone


def balance_at(balance: Balance, now: dt.datetime) -> Balance:
    """The stored balance as a member is shown it at now (shown): itself, or an unsaved copy. A row
    past its pending_until (pending_stale) costs one indexed query of the ledger."""
    stale = pending_stale(balance.computed_at, balance.pending, balance.pending_until, now)
    points, pending, expiring = shown(balance.points, balance.pending, balance.expiring, balance.computed_at, now,
                                      pending_of([balance.member_id], now)[balance.member_id] if stale else None)
    if (points, pending, expiring) == (balance.points, balance.pending, balance.expiring):
        return balance
    return Balance(member_id=balance.member_id, growth=balance.growth, points=points, pending=pending, expiring=expiring,
                   computed_at=balance.computed_at, pending_until=None if stale else balance.pending_until)


def balances_differing(cursor, *, limit: int = 100) -> list[dict]:
    """Members whose stored balance differs from their ledgers at the balance's own computed_at,
    or who have entries and no balance at all (then the stored columns are empty). A stored
    pending_until must be when the ledger's pending points next become available: a later one
    would show points as pending after they became available. An empty one is a balance
    written before the column existed, which pending_stale reads by the midnight instead."""
    at_balance = f"JOIN (SELECT member_id, computed_at, {_horizon_sql('computed_at')} AS horizon FROM loyalty_balance) x ON x.member_id = e.member_id"  # nosec B608
    cursor.execute(
        f"""SELECT c.* FROM (
                SELECT b.member_id, b.growth AS stored_growth, b.points AS stored_points, b.pending AS stored_pending,
                       b.expiring AS stored_expiring, b.pending_until AS stored_pending_until,
                       COALESCE(g.total, 0) AS growth, COALESCE(p.total, 0) AS points, COALESCE(p.pending, 0) AS pending,
                       {EXPIRING} AS expiring, CASE WHEN p.pending <> 0 THEN p.pending_until END AS pending_until
                  FROM loyalty_balance b
                  LEFT JOIN ({_growth_sums(False)}) g ON g.member_id = b.member_id
                  LEFT JOIN ({_points_sums("x.computed_at", "x.horizon", "loyalty_pointsentry", at_balance)}) p ON p.member_id = b.member_id
            ) c
             WHERE c.stored_growth <> c.growth OR c.stored_points <> c.points OR c.stored_pending <> c.pending
                OR c.stored_expiring <> c.expiring
                OR (c.stored_pending_until IS NOT NULL AND (c.pending_until IS NULL OR c.stored_pending_until <> c.pending_until))
            UNION ALL
            SELECT m.member_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
              FROM (SELECT member_id FROM loyalty_growthentry UNION SELECT member_id FROM loyalty_pointsentry) m
             WHERE NOT EXISTS (SELECT 1 FROM loyalty_balance b WHERE b.member_id = m.member_id)
             LIMIT %s""",  # nosec B608
        [limit],
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _horizon_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"{column} + interval '{EXPIRING_DAYS} days'"
    return f"datetime({column}, '+{EXPIRING_DAYS} days')"
