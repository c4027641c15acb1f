"""The entry points: recompute (everyone, a nightly increment, or some
members), churn fit, pins, reviews and group moves. Admin, tasks, signals and
commands call these; they hold no logic of their own."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.audit import audit_record
from crm.bulkload import analyze_on_sqlite
from crm.feeds import feed_write
from crm.models import AuditAction, EngagementEvent, Member, Order, OrderLine, OrderStatus
from segments.circles import v_score_threshold_forget
from segments.days import local_midnight, moves_at
from segments.ladder import (
    RFM,
    Gap,
    Rung,
    gap_to_next,
    ladder_validate,
    recency_days,
    tier_for,
)
from segments.models import (
    ChangeReason,
    Circle,
    CircleMembership,
    GroupMove,
    GroupMoveStatus,
    MemberMetrics,
    RecomputeRun,
    ReviewStatus,
    RunStatus,
    SegmentSettings,
    Tier,
    TierChange,
    TierPin,
    TierReview,
)
from segments.recompute.base import (
    CHURN_HORIZON_DAYS,
    SCOPE,
    Bounds,
    tables_drop,
    vendor_sql,
)
from segments.recompute.circles import circles_write
from segments.recompute.fit import fit_for
from segments.recompute.habits import habits_stage
from segments.recompute.lines import lines_stage
from segments.recompute.nightly import nightly_scope
from segments.recompute.rfm import (
    pins_apply,
    reviews_hold,
    rfm_stage,
    tier_case_sql,
    tier_changes_write,
)
from segments.recompute.scope import NightlyScope, changes_create, past_day_end, scope_create
from segments.recompute.scores import (
    band_moves,
    churn_inputs,
    churn_scores,
    churn_stage,
    v_stage,
)
from segments.recompute.write import STAGED, metrics_write

logger = logging.getLogger(__name__)
STAGES = ("scope", "rfm_tiers", "lines", "habits", "v_score", "churn", "write", "circles")
LOCK_KEY = 0x5E6_7135  # pg_advisory_xact_lock key of the recompute
RUN_LOCK_CLASS = 0x5E6_7136  # pg_advisory_xact_lock(class, run) held by each run's transaction

PROGRESS_MIN_MEMBERS = 1_000  # smaller runs end within a second: no one watches their steps


def run_lock_id(pk: int) -> int:
    """The run's key in its lock class (an int4; ids past 2^31 wrap, harmlessly rarely)."""
    return pk % 2**31


def progress_key(run_id: int) -> str:
    return f"segments:run:{run_id}"


def run_progress(run_id: int) -> dict:
    return cache.get(progress_key(run_id)) or {}


def rung_from_tier(tier: Tier) -> Rung:
    return Rung(
        id=tier.pk,
        code=tier.code,
        name=tier.name,
        rank=tier.rank,
        is_catch_all=tier.is_catch_all,
        max_recency_days=tier.max_recency_days,
        orders_strict=tier.orders_comparison == "gt",
        orders_365=tier.orders_365,
        spend_strict=tier.spend_comparison == "gt",
        spend_365=tier.spend_365,
    )


def ladder_load() -> list[Rung]:
    return ladder_validate(rung_from_tier(tier) for tier in Tier.objects.all())


def _lock(cursor, run: RecomputeRun) -> None:
    """Take the run's own lock (held while its transaction waits and works: it is
    alive), then the recompute's lock, and give the transaction the memory its
    sorts and hashes need."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [RUN_LOCK_CLASS, run_lock_id(run.pk)])
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute("SELECT set_config('work_mem', %s, true)", [f"{settings.SEGMENTS_RECOMPUTE_WORK_MEM_MB}MB"])


def tiers_recompute(
    *,
    member_ids: Sequence[int] | None = None,
    as_of: dt.date | None = None,
    reason: str = ChangeReason.NIGHTLY,
    requested_by=None,
    run: RecomputeRun | None = None,
    refit: bool | None = None,
    nightly: NightlyScope | None = None,
) -> RecomputeRun:
    """Recompute metrics, tiers, churn scores and circles for member_ids (everyone when None).

    nightly: instead of member_ids, a nightly run's members with what is read
    again of each (see nightly_scope); the others keep their stored aggregates,
    categories, habits or V score, their tier and circles evaluated today.

    Runs in one transaction: a failure leaves the previous state whole. The
    churn model is refitted on a full run when the latest fit is older than a
    week (or refit=True)."""
    as_of = as_of or timezone.localdate()
    if nightly is not None:
        member_ids = nightly.members
    full = member_ids is None
    stored = nightly is not None  # some members keep stored values: the stages copy them
    claimed_at = timezone.now()  # recorded before the transaction, so that later runs can see it
    if run is None:
        run = RecomputeRun.objects.create(as_of=as_of, reason=reason, full=full, requested_by=requested_by, claimed_at=claimed_at)
    else:
        RecomputeRun.objects.filter(pk=run.pk).update(claimed_at=claimed_at)
    timings: dict = {}
    now = timezone.now()
    at = moves_at(as_of, now)  # a past day's moves are recorded at its end, where that day's tiers are read
    watched = full or len(member_ids) >= PROGRESS_MIN_MEMBERS

    @contextmanager
    def stage(name: str):
        if watched:
            cache.set(progress_key(run.pk), {"stage": name, "done": len(timings), "of": len(STAGES)}, 3600)
        started = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - started, 3)

    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _lock(cursor, run)
            _interrupted_runs_close(cursor, current=run)
            ladder = ladder_load()
            config = SegmentSettings.current()
            bounds = Bounds(as_of)
            watermarks = {
                "max_order_id": Order.objects.aggregate(value=Max("id"))["value"] or 0,
                "max_event_id": EngagementEvent.objects.aggregate(value=Max("id"))["value"] or 0,
                "max_line_id": OrderLine.objects.aggregate(value=Max("id"))["value"] or 0,
            }
            with stage("scope"):
                scope_create(cursor, member_ids, nightly, until=past_day_end(as_of, timezone.localdate(now)))
                base = changes_create(cursor, bounds, nightly, max_order_id=watermarks["max_order_id"])
                if full:
                    cursor.execute("SELECT MAX(member_id) FROM seg_scope")
                    watermarks["max_member_id"] = cursor.fetchone()[0]
                elif nightly is not None:  # where the next nightly run looks for members added since
                    watermarks["max_member_id"] = Member.objects.aggregate(value=Max("id"))["value"] or 0
            with stage("rfm_tiers"):
                rfm_stage(cursor, bounds, ladder, full, stored, trend_ratio=config.trend_ratio, max_order_id=watermarks["max_order_id"])
                pins_apply(cursor, as_of)
                reviews = reviews_hold(cursor, bounds, ladder, config, run, stored)
                changes = tier_changes_write(cursor, reason=reason, run_id=run.pk, now=now, at=at, stored=stored)
            with stage("lines"):
                lines_stage(cursor, bounds, full, stored, max_order_id=watermarks["max_order_id"], base=base)
            with stage("habits"):
                habits_stage(cursor, bounds, full, stored, max_order_id=watermarks["max_order_id"], base=base)
            with stage("v_score"):
                v_stage(cursor, bounds, config, full, stored)
            with stage("churn"):
                fit = fit_for(as_of, config, refit=refit if refit is not None else full)
                inputs = churn_inputs(cursor, as_of, staged=True)
                p, expected = churn_scores(inputs, fit, config)
                moves = band_moves(inputs, p, fit, config, as_of)
                churn_stage(cursor, inputs, p, expected, moves, config)
            with stage("write"):
                metrics_write(cursor, now=now, at=at, trend_ratio=config.trend_ratio, as_of=as_of, max_order_id=watermarks["max_order_id"], stored=stored)
                tables_drop(cursor, *STAGED)
            with stage("circles"):
                if full or stored:  # a night places everyone in its scope by today's line, whatever the cache holds
                    v_score_threshold_forget(past_day_end(as_of, timezone.localdate()))
                circles_write(cursor, list(Circle.objects.filter(active=True)), as_of, full, now, at)
            cursor.execute("SELECT COUNT(*) FROM seg_scope")
            members = cursor.fetchone()[0]
            tables_drop(cursor, SCOPE)
            outcome = {
                "status": RunStatus.DONE, "finished_at": timezone.now(), "members": members,
                "tier_changes": changes, "reviews": reviews, "timings": timings, **watermarks,
            }
            for name, value in outcome.items():
                setattr(run, name, value)
            run.save(update_fields=list(outcome))
    except Exception as error:
        RecomputeRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_at=timezone.now(), message=str(error)[:2000])
        raise
    if full:
        analyze_on_sqlite([MemberMetrics._meta.db_table, CircleMembership._meta.db_table, TierChange._meta.db_table])
    return run


def _interrupted_runs_close(cursor, *, current: RecomputeRun) -> int:
    """Close the runs still shown as running whose worker died (killed, out of
    memory): their transaction was rolled back, and the next run covers their
    members. Holding the recompute's lock, no other run is at work: a run taken
    up whose own lock nobody holds is dead (its transaction, waiting for the
    recompute's lock or not yet there, would hold it). A killed worker's
    session can linger a while after its locks are gone, so "is the session
    there" is not the question."""
    stuck = RecomputeRun.objects.filter(status=RunStatus.RUNNING).exclude(pk=current.pk)
    if not stuck.exists():  # the usual case, in one short query
        return 0
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objsubid = 2",
            [RUN_LOCK_CLASS],
        )
        alive = {row[0] for row in cursor.fetchall()}
        stuck_ids = [pk for pk in stuck.filter(claimed_at__isnull=False).values_list("pk", flat=True) if run_lock_id(pk) not in alive]
        stuck = stuck.filter(pk__in=stuck_ids)
    else:  # no sessions to ask: a run that started half a day ago is not coming back
        stuck = stuck.filter(started_at__lt=timezone.now() - dt.timedelta(hours=12))
    return stuck.update(
        status=RunStatus.FAILED, finished_at=timezone.now(),
        message=_("Interrupted: the worker stopped before the run finished, and nothing of it was written. A later run covers its members."),
    )


def tiers_recompute_nightly(*, as_of: dt.date | None = None) -> RecomputeRun:
    as_of = as_of or timezone.localdate()
    scope = nightly_scope(as_of)
    if scope is None:
        return tiers_recompute(as_of=as_of, reason=ChangeReason.NIGHTLY)
    return tiers_recompute(nightly=scope, as_of=as_of, reason=ChangeReason.NIGHTLY)


# Pins, reviews and group moves ------------------------------------------------


def tier_pin(*, member: Member, tier: Tier, ends_on: dt.date, reason: str, user, starts_on: dt.date | None = None) -> TierPin:
    pin = TierPin.objects.create(
        member=member, tier=tier, ends_on=ends_on, reason=reason, created_by=user, starts_on=starts_on or timezone.localdate()
    )
    audit_record(
        actor=user, action=AuditAction.TIER, obj=member, summary=f"pin {member.external_id} to {tier.code} until {ends_on}",
        detail={"pin": tier.code, "until": ends_on.isoformat(), "reason": reason},
    )
    tiers_recompute(member_ids=[member.pk], reason=ChangeReason.PIN, requested_by=user)
    return pin


def tier_pin_release(*, pin: TierPin, user) -> None:
    TierPin.objects.filter(pk=pin.pk, released_at=None).update(released_at=timezone.now())
    audit_record(
        actor=user, action=AuditAction.TIER, obj=pin.member, summary=f"release pin of {pin.member.external_id} ({pin.tier.code})",
        detail={"pin_released": pin.tier.code},
    )
    tiers_recompute(member_ids=[pin.member_id], reason=ChangeReason.PIN, requested_by=user)


def tier_review_decide(*, review: TierReview, approve: bool, user) -> None:
    """Approve: the order counts and the member moves up now. Reject: the order never counts towards a tier."""
    updated = TierReview.objects.filter(pk=review.pk, status=ReviewStatus.PENDING).update(
        status=ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED, decided_by=user, decided_at=timezone.now()
    )
    if not updated:
        return
    audit_record(
        actor=user, action=AuditAction.TIER, obj=review.member,
        summary=f"{'approve' if approve else 'reject'} {review.member.external_id} → {review.to_tier.code}",
        detail={"review": "approved" if approve else "rejected", "to": review.to_tier.code, "order": str(review.largest_order)},
    )
    if approve:
        with transaction.atomic():
            metrics = MemberMetrics.objects.select_for_update().get(member_id=review.member_id)
            if metrics.tier_id != review.to_tier_id:
                feed_write()  # the shop's webhooks read tier changes by id (crm.feeds)
                change = TierChange.objects.create(
                    member_id=review.member_id, from_tier_id=metrics.tier_id, to_tier=review.to_tier,
                    reason=ChangeReason.REVIEW, note=str(review.largest_order),
                )
                _group_move_for(change)
                MemberMetrics.objects.filter(pk=metrics.pk).update(tier=review.to_tier, tier_since=timezone.now())
    tiers_recompute(member_ids=[review.member_id], reason=ChangeReason.REVIEW, requested_by=user)


def _group_move_for(change: TierChange) -> None:
    """The same to-do the recompute writes for its moves (tier_changes_write)."""
    if change.from_tier is None or change.from_tier.community_id == change.to_tier.community_id:
        return
    GroupMove.objects.create(
        member_id=change.member_id, change=change,
        from_community_id=change.from_tier.community_id, to_community_id=change.to_tier.community_id,
    )


def group_move_done(*, moves, user, status: str = GroupMoveStatus.DONE) -> int:
    return moves.filter(status=GroupMoveStatus.PENDING).update(status=status, done_by=user, done_at=timezone.now())


# What the member page shows -----------------------------------------------------


def member_standing(member: Member, *, as_of: dt.date | None = None) -> dict | None:
    """Metrics, recency, tier, gap to the next tier and live churn figures for one member."""
    as_of = as_of or timezone.localdate()
    metrics = MemberMetrics.objects.select_related("tier", "favourite_category", "second_category").filter(member=member).first()
    if metrics is None:
        return None
    rfm, gap = _placed(metrics, as_of)
    bounds = Bounds(as_of)
    firsts = month_firsts(as_of)
    # One read of his paid orders since the first of those months (before the trend's 120 days) serves both.
    paid = list(
        Order.objects.filter(member=member, status=OrderStatus.PAID, ordered_at__gte=min(local_midnight(firsts[0]), bounds.prior_start), ordered_at__lt=bounds.end)
        .values_list("ordered_at", "amount")
    )
    return {
        "metrics": metrics,
        # Counted here: a nightly run leaves the stored counts as they are while the trend holds.
        "orders_30d": sum(1 for ordered_at, _amount in paid if ordered_at >= bounds.recent_start),
        "orders_prior_90d": sum(1 for ordered_at, _amount in paid if bounds.prior_start <= ordered_at < bounds.recent_start),
        "recency_days": rfm.recency_days,
        "gap": gap,
        "expected_next_order": _expected_next_order(metrics, as_of),
        "months": monthly_orders(paid, firsts),
    }


def month_firsts(as_of: dt.date, months: int = 12) -> list[dt.date]:
    """The first days of the calendar months ending with as_of's, oldest first."""
    firsts = []
    year, month = as_of.year, as_of.month
    for _n in range(months):
        firsts.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return firsts[::-1]


def monthly_orders(paid: Sequence[tuple[dt.datetime, Decimal]], firsts: Sequence[dt.date]) -> list[tuple[dt.date, int, Decimal]]:
    """(first day of the month, paid orders, paid spend) for each of the calendar months (Asia/Shanghai)
    beginning at firsts, from (ordered_at, amount) of paid orders; the others are left out."""
    totals: dict[dt.date, tuple[int, Decimal]] = {}
    for ordered_at, amount in paid:
        first = timezone.localtime(ordered_at).date().replace(day=1)
        orders, spend = totals.get(first, (0, Decimal("0")))
        totals[first] = (orders + 1, spend + amount)
    return [(first, *totals.get(first, (0, Decimal("0")))) for first in firsts]


def gap_of(metrics: MemberMetrics, *, as_of: dt.date | None = None) -> Gap | None:
    """What the member of these stored metrics lacks for the next tier on the day (today): the
    ladder and his figures, no order read (the leader's card; member_standing counts more)."""
    return _placed(metrics, as_of or timezone.localdate())[1]


def _placed(metrics: MemberMetrics, as_of: dt.date) -> tuple[RFM, Gap | None]:
    ladder = ladder_load()
    last_date = timezone.localtime(metrics.last_order_at).date() if metrics.last_order_at else None
    rfm = RFM(recency_days=recency_days(last_date, as_of), orders_365=metrics.orders_365, spend_365=metrics.spend_365)
    current = next((rung for rung in ladder if rung.id == metrics.tier_id), None) or tier_for(rfm, ladder)
    return rfm, gap_to_next(rfm, current, ladder)


def gap_text(gap: Gap | None) -> str:
    """What a member still lacks for the next tier, as staff read it ("spend ¥320.00 more / buy 2
    more times, to reach 黄金"); "" at the top of the ladder or when nothing is missing."""
    if gap is None:
        return ""
    parts = []
    if gap.spend > 0:
        parts.append(_("spend ¥%(amount)s more") % {"amount": f"{gap.spend:,.2f}"})
    if gap.orders > 0:
        parts.append(_("buy %(orders)s more times") % {"orders": gap.orders})
    if gap.needs_recent_order:
        parts.append(_("order within %(days)s days") % {"days": gap.rung.max_recency_days})
    return " / ".join(parts) + _(", to reach %(tier)s") % {"tier": gap.rung.name} if parts else ""


def _expected_next_order(metrics: MemberMetrics, as_of: dt.date) -> dt.date | None:
    if not metrics.expected_orders_30d or metrics.expected_orders_30d < 0.05:
        return None
    return as_of + dt.timedelta(days=round(CHURN_HORIZON_DAYS / metrics.expected_orders_30d))


def ladder_preview(ladder: Sequence[Rung], *, as_of: dt.date | None = None) -> list[tuple[int | None, int, int]]:
    """How many members a candidate ladder would move: (current tier id, new tier id, members), moves only.
    Pins and reviews are left out; the recompute applies them after saving."""
    bounds = Bounds(as_of or timezone.localdate())
    spend = vendor_sql("CAST(m.spend_365 * 100 AS BIGINT)", "CAST(ROUND(m.spend_365 * 100) AS INTEGER)")
    case, params = tier_case_sql(ladder, bounds, last="m.last_order_at", orders="m.orders_365", spend_cents=spend)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT current_tier, new_tier, COUNT(*) FROM (
                    SELECT m.tier_id AS current_tier, {case} AS new_tier FROM segments_membermetrics m) moved
                WHERE current_tier IS NULL OR current_tier <> new_tier
                GROUP BY current_tier, new_tier ORDER BY 3 DESC""",  # nosec B608
            params,
        )
        return [(current, new, count) for current, new, count in cursor.fetchall()]


def circle_count(rules: dict, *, as_of: dt.date | None = None) -> int:
    """Members a circle's rules take today (the live count before saving)."""
    from segments.circles import circle_count as count

    return count(rules, as_of=as_of)


def circle_estimate(rules: dict, *, as_of: dt.date | None = None):
    """The live count from a sample on a large base (segments.circles.Estimate), or None: count exactly."""
    from segments.circles import circle_estimate as estimate

    return estimate(rules, as_of=as_of)


def circle_materialise(circle: Circle, *, as_of: dt.date | None = None) -> int:
    """Rebuild one circle's membership for everyone (after its rules were edited)."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        circles_write(cursor, [circle], as_of or timezone.localdate(), True, now)
    circle.refresh_from_db()
    return circle.member_count
