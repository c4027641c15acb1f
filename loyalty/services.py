"""The entry points of the loyalty programme: settle the ledgers (everyone, a
night's changes, or some members), expire points, redeem, adjust, and the
rights a member has. Admin, tasks, signals and commands call these.

One settle is one transaction: the entries (awards.py) and the balances of
the members they touch (balances.py) commit together, under a lock that
makes settles take turns, so that each reads what the one before wrote (on
SQLite, its IMMEDIATE transactions do the same)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.bulkload import analyze_on_sqlite
from crm.models import EngagementEvent, Member, Order, OrderStatus
from loyalty.awards import SCOPE, Moves, expiry_settle, expiry_unwritten, last_expiry_day, ledger_settle, misplaced_reverse
from loyalty.balances import EXPIRING_DAYS, balance_at, balances_refresh
from loyalty.models import (
    Adjustment,
    Balance,
    GrowthEntry,
    Ledger,
    LoyaltySettings,
    PointsEntry,
    Redemption,
    Right,
    RuleCode,
    SettleRun,
    SourceKind,
)
from segments.models import MemberMetrics, Tier
from segments.days import local_midnight

LOCK_KEY = 0x10_7A17  # pg_advisory_xact_lock key of a settle


class RedemptionError(Exception):
    """A redemption that cannot be made, with the reason to show."""


def _lock(cursor) -> None:
    """One settle at a time, with the memory its sorts and hashes need (as the recompute's)."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute("SELECT set_config('work_mem', %s, true)", [f"{settings.SEGMENTS_RECOMPUTE_WORK_MEM_MB}MB"])


class _Stages:
    """Seconds per stage of a run, stored with it (SettleRun.timings)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0) + now - self._last, 3)
        self._last = now


def _settle_ledgers(cursor, *, scoped: bool, now: dt.datetime, stages: _Stages, reprice: bool = False) -> Moves:
    written = Moves(entries=misplaced_reverse(cursor, scoped=scoped, now=now))
    stages.done("moves")
    for ledger in (Ledger.GROWTH, Ledger.POINTS):
        written += ledger_settle(cursor, ledger, scoped=scoped, reprice=reprice, now=now)
        stages.done(ledger)
    # A settle reads its members' expiries again only after a late lot, unless the last expiry day
    # came without points_expire's run since (its beat late or stopped): then it writes them itself.
    written += Moves(entries=expiry_settle(cursor, scoped=scoped, now=now, after_settle=not expiry_run_behind(now)))
    stages.done("expiry")
    return written


def expiry_run_behind(now: dt.datetime) -> bool:
    """Whether the last expiry day (1 January, local midnight) has come since the last run that brought
    every member's expiries up to date: points_expire, or a settle or re-award of everyone."""
    latest = last_expiry_day(now)
    return not SettleRun.objects.filter(scope__in=["expiry", "all", "reprice"], started_at__gte=latest).exists()


def _new_year_cutoffs(after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """Points expire at a local 1 January midnight (the end of a calendar year): those in (after, until]."""
    first = timezone.localtime(after).year
    midnights = (local_midnight(dt.date(year, 1, 1)) for year in range(first, timezone.localtime(until).year + 2))
    return [moment for moment in midnights if after < moment <= until]


def _scope_create(cursor, member_ids: Sequence[int] | None = None, *, select: str = "", params: Sequence = ()) -> int:
    """The temp table of the members a scoped settle covers, from ids or from a SELECT of member ids."""
    cursor.execute(f"DROP TABLE IF EXISTS {SCOPE}")
    cursor.execute(f"CREATE TEMP TABLE {SCOPE} (member_id BIGINT PRIMARY KEY)")
    if member_ids is not None:
        cursor.executemany(f"INSERT INTO {SCOPE} (member_id) VALUES (%s)", [(m,) for m in sorted(set(member_ids))])  # nosec B608
    else:
        cursor.execute(f"INSERT INTO {SCOPE} (member_id) SELECT DISTINCT member_id FROM ({select}) s WHERE member_id IS NOT NULL", params)  # nosec B608
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {SCOPE}")
    cursor.execute(f"SELECT COUNT(*) FROM {SCOPE}")  # nosec B608 - a fixed table name
    return cursor.fetchone()[0]


def _scope_drop(cursor) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {SCOPE}")


def _watermarks() -> dict:
    return {
        "max_order_id": Order.objects.aggregate(m=Max("id"))["m"] or 0,
        "max_event_id": EngagementEvent.objects.aggregate(m=Max("id"))["m"] or 0,
        "max_member_id": Member.objects.aggregate(m=Max("id"))["m"] or 0,
    }


def ledgers_settle(*, member_ids: Sequence[int] | None = None, now: dt.datetime | None = None, scope: str = "") -> SettleRun:
    """Award and reverse what the rules say for these members (None: everyone), and write their balances."""
    now = now or timezone.now()
    stages = _Stages()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        # Inside the transaction: a run killed midway leaves no trace, and the next covers its members.
        run = SettleRun.objects.create(started_at=now, scope=scope or ("members" if member_ids is not None else "all"), **_watermarks())
        scoped = member_ids is not None
        if scoped:
            run.members = _scope_create(cursor, member_ids)
        stages.done("scope")
        written = _settle_ledgers(cursor, scoped=scoped, now=now, stages=stages)
        refreshed = balances_refresh(cursor, scoped=scoped, now=now)
        stages.done("balances")
        if scoped:
            _scope_drop(cursor)
        run.members = run.members or refreshed
        run.entries = written.entries
        run.timings = stages.timings
        run.finished_at = timezone.now()
        run.save()
    if not scoped:
        analyze_on_sqlite([GrowthEntry._meta.db_table, PointsEntry._meta.db_table, Balance._meta.db_table])
    return run


def ledgers_settle_nightly(*, now: dt.datetime | None = None) -> SettleRun:
    """What the night can have changed since the last run.

    Settled: the members with new members, orders or events since then, those an
    order or event left since (moved away or deleted: crm.Departure), and those
    with an order or event changed since (a refund or an edit, by file, API or admin, is
    settled by its own per-member task too: this is the net under a lost one).
    Only their balances refreshed: the members whose points became available since
    then (found through the orders' time index: an order dated D is available from
    D + the return window) and, once a year, those whose points enter the 30 days
    before a 1 January expiry."""
    now = now or timezone.now()
    if not SettleRun.objects.filter(scope__in=SettleRun.NIGHTLY_SCOPES).exists():
        return ledgers_settle(now=now)
    stages = _Stages()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        # Read under the lock: a second night's run started meanwhile starts where this one ends.
        last = SettleRun.objects.filter(scope__in=SettleRun.NIGHTLY_SCOPES).order_by("-started_at", "-id").first()
        run = SettleRun.objects.create(started_at=now, scope="nightly", **_watermarks())
        run.members = _scope_create(
            cursor,
            select="""SELECT id AS member_id FROM crm_member WHERE id > %s AND id <= %s
                      UNION SELECT member_id FROM crm_order WHERE id > %s AND id <= %s
                      UNION SELECT member_id FROM crm_order WHERE changed_at >= %s
                      UNION SELECT member_id FROM crm_departure WHERE at >= %s
                      UNION SELECT member_id FROM crm_engagementevent WHERE id > %s AND id <= %s
                      UNION SELECT member_id FROM crm_engagementevent WHERE changed_at >= %s""",
            params=[last.max_member_id, run.max_member_id, last.max_order_id, run.max_order_id, last.started_at, last.started_at,
                    last.max_event_id, run.max_event_id, last.started_at],
        )
        stages.done("scope")
        written = _settle_ledgers(cursor, scoped=True, now=now, stages=stages)
        return_days = dt.timedelta(days=LoyaltySettings.current().return_days)
        since_day, today = timezone.localtime(last.started_at).date(), timezone.localtime(now).date()
        window = dt.timedelta(days=EXPIRING_DAYS)
        due = " ".join(
            "UNION SELECT member_id FROM loyalty_pointsentry WHERE expires_at = %s"
            for _cutoff in _new_year_cutoffs(last.started_at + window, now + window)
        )
        cursor.execute(
            f"""INSERT INTO {SCOPE} (member_id)
                SELECT DISTINCT member_id FROM (
                    SELECT member_id FROM crm_order WHERE ordered_at >= %s AND ordered_at < %s AND status = %s {due}
                ) s WHERE NOT EXISTS (SELECT 1 FROM {SCOPE} x WHERE x.member_id = s.member_id)""",  # nosec B608
            [
                local_midnight(since_day - return_days + dt.timedelta(days=1)), local_midnight(today - return_days + dt.timedelta(days=1)),
                OrderStatus.PAID, *_new_year_cutoffs(last.started_at + window, now + window),
            ],
        )
        stages.done("scope")
        balances_refresh(cursor, scoped=True, now=now)
        stages.done("balances")
        _scope_drop(cursor)
        run.entries = written.entries
        run.timings = stages.timings
        run.finished_at = timezone.now()
        run.save()
    return run


def reprice_preview(*, now: dt.datetime | None = None) -> dict[str, Moves]:
    """What a re-award under today's rules would write, per ledger: nothing is written."""
    with transaction.atomic(), connection.cursor() as cursor:
        return {
            ledger: ledger_settle(cursor, ledger, scoped=False, reprice=True, preview=True, now=now)
            for ledger in (Ledger.GROWTH, Ledger.POINTS)
        }


def ledgers_reprice(*, now: dt.datetime | None = None) -> SettleRun:
    """The explicit re-award: every source is brought to what today's rules say, differences recorded."""
    now = now or timezone.now()
    stages = _Stages()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        run = SettleRun.objects.create(started_at=now, scope="reprice", **_watermarks())
        written = _settle_ledgers(cursor, scoped=False, now=now, stages=stages, reprice=True)
        run.members = balances_refresh(cursor, scoped=False, now=now)
        stages.done("balances")
        run.entries = written.entries
        run.timings = stages.timings
        run.finished_at = timezone.now()
        run.save()
    return run


def points_expire(*, now: dt.datetime | None = None) -> int:
    """Expire what is left of every lot whose expiry has come: one entry per member and expiry day.

    Points expire at a local 1 January midnight; each one since the last expiry run (or, the
    first time, since the earliest lot) is processed once, for the members with a lot expiring
    then (awards.expiry_settle: spending the oldest lots first). A settle brings the expiries of
    its members up to date as well, for lots that change after their expiry day, and for every
    lot when an expiry day has come without this run (its beat late or stopped)."""
    now = now or timezone.now()
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        last = SettleRun.objects.filter(scope="expiry").order_by("-started_at", "-id").first()
        if last is not None:
            after = last.started_at
        else:
            earliest = PointsEntry.objects.filter(expires_at__isnull=False).order_by("expires_at").values_list("expires_at", flat=True).first()
            after = (earliest - dt.timedelta(seconds=1)) if earliest else now
        run = SettleRun.objects.create(started_at=now, scope="expiry", **_watermarks())
        cutoffs = _new_year_cutoffs(after, now)
        if cutoffs:
            run.members = _scope_create(cursor, select="SELECT member_id FROM loyalty_pointsentry WHERE expires_at IN ({})".format(  # nosec B608
                ", ".join(["%s"] * len(cutoffs))), params=cutoffs)
            written = expiry_settle(cursor, scoped=True, now=now)
            balances_refresh(cursor, scoped=True, now=now)
            _scope_drop(cursor)
        run.entries = written
        run.finished_at = timezone.now()
        run.save()
    return written


def pending_release(*, now: dt.datetime | None = None) -> int:
    """Refresh the balances whose pending points have become available since they were computed
    (their pending_until has come: a local midnight, an order's date + the return window), so that
    what members and staff are shown is one stored row again; return how many. The beat runs it at
    00:05; the nightly settle (03:40) would refresh them too, hours later."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        members = _scope_create(cursor, select="SELECT member_id FROM loyalty_balance WHERE pending_until <= %s", params=[now])
        if members:
            balances_refresh(cursor, scoped=True, now=now)
        _scope_drop(cursor)
    return members


def balance_of(member: Member) -> Balance:
    """The stored balance as the member is shown it now (balances.balance_at: one indexed row), or an
    empty one for a member with no entries yet."""
    stored = Balance.objects.filter(member=member).first()
    return balance_at(stored, timezone.now()) if stored else Balance(member=member)


def _balance_now(member: Member, now: dt.datetime, *, spending: bool = False) -> tuple[Balance, int]:
    """The member's balance recomputed now, locked for the rest of the transaction, and (spending)
    how many of its available points have passed their expiry day without the expiry run having
    written them off yet (from midnight on 1 January until points_expire has run): they cannot be
    spent. Otherwise 0, and that ledger read is saved."""
    with connection.cursor() as cursor:
        _scope_create(cursor, [member.pk])
        balances_refresh(cursor, scoped=True, now=now)
        expired = expiry_unwritten(cursor, now=now) if spending else 0
        _scope_drop(cursor)
    return Balance.objects.select_for_update().get(member=member), expired


@dataclass(frozen=True)
class Rights:
    tier: Tier | None
    mine: list[Right]
    next_tier: Tier | None
    next_adds: list[Right]


def rights_of(member: Member) -> Rights:
    """The rights of the member's tier and every tier below it (his tier's own first), and what
    the next tier up adds: three queries (his tier, the ladder, the active rights)."""
    metrics = MemberMetrics.objects.filter(member=member).select_related("tier").first()
    return rights_at(metrics.tier if metrics else None, Tier.objects.all())


def rights_at(tier: Tier | None, tiers) -> Rights:
    """The rights of a tier (None: the catch-all) on a ladder of tiers: one query."""
    ladder = sorted(tiers, key=lambda each: each.rank)
    tier = tier or next((t for t in ladder if t.is_catch_all), None)
    if tier is None:
        return Rights(None, [], None, [])
    rights = list(Right.objects.filter(active=True).select_related("tier"))  # ordered by tier rank (highest first), position
    next_tier = next((t for t in ladder if t.rank > tier.rank), None)
    return Rights(
        tier,
        [right for right in rights if right.tier.rank <= tier.rank],
        next_tier,
        [right for right in rights if next_tier is not None and right.tier_id == next_tier.pk],
    )


def points_redeem(*, member: Member, right: Right, key: str, user=None, now: dt.datetime | None = None) -> Redemption:
    """Spend points on a right, once per idempotency key.

    The same key again returns the first redemption (a retried request); a key used for
    another member or right, a right not his to redeem, or too few available points is refused
    with the reason, and nothing is written."""
    now = now or timezone.now()
    key = (key or "").strip()
    if not key or len(key) > 64:
        raise RedemptionError(_("An idempotency key of 1 to 64 characters is required."))
    with transaction.atomic():
        earlier = Redemption.objects.filter(key=key).first()
        if earlier is not None:
            if earlier.member_id != member.pk or earlier.right_id != right.pk:
                raise RedemptionError(_("This idempotency key was already used for another redemption."))
            return earlier
        if not right.active or right.points_cost is None:
            raise RedemptionError(_("“%(right)s” is not redeemed with points.") % {"right": right.name})
        if right not in rights_of(member).mine:
            raise RedemptionError(_("“%(right)s” is a right of a higher tier than this member's.") % {"right": right.name})
        balance, expired = _balance_now(member, now, spending=True)
        if balance.available - expired < right.points_cost:
            reason = _("Not enough points: %(available)s available, %(cost)s needed.") % {
                "available": balance.available - expired, "cost": right.points_cost}
            if expired:
                reason += " " + _("%(expired)s points reached their expiry day and are being written off.") % {"expired": expired}
            raise RedemptionError(reason)
        redemption = Redemption.objects.create(member=member, right=right, points=right.points_cost, key=key, created_at=now, created_by=user)
        PointsEntry.objects.create(
            member=member, amount=-right.points_cost, rule=RuleCode.REDEMPTION, source_kind=SourceKind.REDEMPTION,
            source_id=redemption.pk, occurred_at=now, recorded_at=now, available_at=now, expires_at=None,
        )
        _balance_now(member, now)
    return redemption


def adjustment_create(*, member: Member, ledger: str, amount: int, reason: str, user=None, now: dt.datetime | None = None) -> Adjustment:
    """A manual correction of one ledger, with its reason and author. Points added expire like earned ones."""
    now = now or timezone.now()
    if not amount:
        raise ValueError(_("An adjustment needs an amount other than zero."))
    if not (reason or "").strip():
        raise ValueError(_("An adjustment needs a reason."))
    with transaction.atomic():
        adjustment = Adjustment.objects.create(member=member, ledger=ledger, amount=amount, reason=reason.strip(), created_at=now, created_by=user)
        common = {"member": member, "amount": amount, "rule": RuleCode.ADJUSTMENT, "source_kind": SourceKind.ADJUSTMENT,
                  "source_id": adjustment.pk, "occurred_at": now, "recorded_at": now}
        if ledger == Ledger.GROWTH:
            GrowthEntry.objects.create(**common)
        else:
            policy = LoyaltySettings.current()
            local = timezone.localtime(now).date()
            expires = local_midnight(dt.date(local.year + 1 + policy.expiry_years, 1, 1)) if amount > 0 else None
            PointsEntry.objects.create(**common, available_at=now, expires_at=expires)
        _balance_now(member, now)
    return adjustment
