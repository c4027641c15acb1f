"""The entry points: recompute (everyone, a nightly increment, or some
members), churn fit, pins, reviews and group moves. Admin, tasks, signals and
commands call these; they hold no logic of their own."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.audit import audit_record
from crm.models import AuditAction, EngagementEvent, Member, Order, OrderStatus
from segments import churn, recompute
from segments.circles import v_score_threshold_forget
from segments.ladder import RFM, Rung, gap_to_next, ladder_validate, recency_days, tier_for
from segments.models import (
    ChangeReason,
    ChurnFit,
    Circle,
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

logger = logging.getLogger(__name__)
STAGES = ("scope", "rfm_tiers", "lines", "habits", "v_score", "churn", "write", "circles")
LOCK_KEY = 0x5E6_7135  # pg_advisory_xact_lock key of the recompute
CHURN_REFIT_DAYS = 7
CHURN_FIT_SAMPLE = 100_000
PROGRESS_MIN_MEMBERS = 1_000  # smaller runs end within a second: no one watches their steps


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


def _lock(cursor) -> None:
    """Take the recompute's lock and give its transaction the memory its sorts and hashes need."""
    if connection.vendor == "postgresql":
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
    nightly: recompute.NightlyScope | None = None,
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
    backend_pid = None
    if connection.vendor == "postgresql":  # recorded before the transaction, so that later runs can see it
        connection.ensure_connection()
        backend_pid = connection.connection.info.backend_pid
    if run is None:
        run = RecomputeRun.objects.create(as_of=as_of, reason=reason, full=full, requested_by=requested_by, backend_pid=backend_pid)
    elif backend_pid is not None:
        RecomputeRun.objects.filter(pk=run.pk).update(backend_pid=backend_pid)
    timings: dict = {}
    now = timezone.now()
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
            _lock(cursor)
            _interrupted_runs_close(cursor, current=run)
            ladder = ladder_load()
            config = SegmentSettings.current()
            bounds = recompute.Bounds(as_of)
            watermarks = {
                "max_order_id": Order.objects.aggregate(value=Max("id"))["value"] or 0,
                "max_event_id": EngagementEvent.objects.aggregate(value=Max("id"))["value"] or 0,
            }
            with stage("scope"):
                recompute.scope_create(cursor, member_ids, nightly)
                base = recompute.changes_create(cursor, bounds, nightly, max_order_id=watermarks["max_order_id"])
                if full:
                    cursor.execute("SELECT MAX(member_id) FROM seg_scope")
                    watermarks["max_member_id"] = cursor.fetchone()[0]
            with stage("rfm_tiers"):
                recompute.rfm_stage(cursor, bounds, ladder, full, stored, trend_ratio=config.trend_ratio, max_order_id=watermarks["max_order_id"])
                recompute.pins_apply(cursor, as_of)
                reviews = recompute.reviews_hold(cursor, bounds, ladder, config, run, stored)
                changes = recompute.tier_changes_write(cursor, reason=reason, run_id=run.pk, now=now, stored=stored)
            with stage("lines"):
                recompute.lines_stage(cursor, bounds, full, stored, max_order_id=watermarks["max_order_id"], base=base)
            with stage("habits"):
                recompute.habits_stage(cursor, bounds, full, stored, max_order_id=watermarks["max_order_id"], base=base)
            with stage("v_score"):
                recompute.v_stage(cursor, bounds, config, full, stored)
            with stage("churn"):
                fit = _churn_fit_for(as_of, config, refit=refit if refit is not None else full)
                inputs = recompute.churn_inputs(cursor, as_of, staged=True)
                p, expected = recompute.churn_scores(inputs, fit, config)
                moves = recompute.band_moves(inputs, p, fit, config, as_of)
                recompute.churn_stage(cursor, inputs, p, expected, moves, config)
            with stage("write"):
                recompute.metrics_write(cursor, now=now, trend_ratio=config.trend_ratio, as_of=as_of, max_order_id=watermarks["max_order_id"], stored=stored)
                recompute._drop(cursor, *recompute.STAGED)
            with stage("circles"):
                if full:
                    v_score_threshold_forget()
                recompute.circles_write(cursor, list(Circle.objects.filter(active=True)), as_of, full, now)
            cursor.execute("SELECT COUNT(*) FROM seg_scope")
            members = cursor.fetchone()[0]
            recompute._drop(cursor, recompute.SCOPE)
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
    return run


def _interrupted_runs_close(cursor, *, current: RecomputeRun) -> int:
    """Close the runs still shown as running whose worker died (killed, out of
    memory): their transaction was rolled back, and the next run covers their
    members. Holding the recompute's lock, no other run is at work: a run whose
    session is not waiting for the lock is dead (a killed worker's session can
    linger a while after its lock is gone, so "is the session there" is not
    the question)."""
    stuck = RecomputeRun.objects.filter(status=RunStatus.RUNNING).exclude(pk=current.pk)
    if not stuck.exists():  # the usual case, in one short query
        return 0
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = %s AND objsubid = 1",
            [LOCK_KEY],
        )
        stuck = stuck.filter(backend_pid__isnull=False).exclude(backend_pid__in=[row[0] for row in cursor.fetchall()])
    else:  # no sessions to ask: a run that started half a day ago is not coming back
        stuck = stuck.filter(started_at__lt=timezone.now() - dt.timedelta(hours=12))
    return stuck.update(
        status=RunStatus.FAILED, finished_at=timezone.now(),
        message=_("Interrupted: the worker stopped before the run finished, and nothing of it was written. A later run covers its members."),
    )


def _churn_fit_for(as_of: dt.date, config: SegmentSettings, *, refit: bool) -> ChurnFit | None:
    """The fit the scores use: a fresh one when asked and due; None (heuristic) when the shop has too little history."""
    latest = ChurnFit.objects.filter(model=config.churn_model, time_unit=config.churn_time_unit).order_by("-fitted_at").first()
    due = latest is None or latest.as_of <= as_of - dt.timedelta(days=CHURN_REFIT_DAYS)
    if refit and due:
        try:
            return churn_fit(
                as_of=as_of, model=config.churn_model, time_unit=config.churn_time_unit,
                min_members=config.churn_min_members, sample=CHURN_FIT_SAMPLE,
            )
        except churn.FitError as error:
            logger.info("churn model not fitted: %s", error)
            return None
    return latest


def churn_summary(as_of: dt.date, time_unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) per member over every paid order up to the as-of date:
    repeat purchase days (same-day orders merged), first to last, first to as-of."""
    day = recompute._sql("(ordered_at AT TIME ZONE %s)::date", "date(ordered_at, '+8 hours')")
    params = [recompute.local_midnight(as_of + dt.timedelta(days=1))]
    tz_params = [timezone.get_current_timezone_name()] if connection.vendor == "postgresql" else []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COUNT(DISTINCT {day}) - 1, MIN({day}), MAX({day}) FROM crm_order
                WHERE status = %s AND ordered_at < %s GROUP BY member_id""",  # nosec B608
            tz_params * 3 + [OrderStatus.PAID, *params],
        )
        rows = cursor.fetchall()
    unit = 7.0 if time_unit == "week" else 1.0
    as_of_ordinal = as_of.toordinal()
    x = np.array([row[0] for row in rows], dtype=float)
    first = np.array([_day(row[1]).toordinal() for row in rows], dtype=float)
    last = np.array([_day(row[2]).toordinal() for row in rows], dtype=float)
    return x, (last - first) / unit, (as_of_ordinal - first) / unit


def _day(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def churn_fit(
    *, as_of: dt.date, model: str, time_unit: str, min_members: int = 1, sample: int | None = None, save: bool = True
) -> ChurnFit:
    """Fit on every member with a paid order up to as_of, or on a fixed random
    sample of them (the recompute's weekly refit: 100k members pin the four
    parameters down as well as a million, in a tenth of the time)."""
    x, t_x, T = churn_summary(as_of, time_unit)  # noqa: N806
    if x.size < min_members:
        raise churn.FitError(f"{x.size} members with orders; at least {min_members} needed to fit")
    if sample and x.size > sample:
        picked = np.random.default_rng(0).choice(x.size, sample, replace=False)
        x, t_x, T = x[picked], t_x[picked], T[picked]  # noqa: N806
    result = churn.fit(model, x, t_x, T)
    fit = ChurnFit(
        as_of=as_of, model=model, time_unit=time_unit, n_members=result.n_members,
        r=result.r, alpha=result.alpha, a=result.a, b=result.b, log_likelihood=result.log_likelihood,
    )
    if save:
        fit.save()
    return fit


def nightly_scope(as_of: dt.date) -> recompute.NightlyScope | None:
    """Members whose tier or circle inputs can have changed since the last
    successful run: new and changed orders and new events (a safety net for
    lost per-order tasks), members whose recency crossed a rule's day count, orders, events
    and registrations leaving a window, pins starting or ending, and churn
    bands whose stored move day has come. With them, what the run reads
    again: the order aggregates of the members with new orders or an order
    leaving the 365-day window (or entering it: recorded before the last run,
    dated after its as-of date), with their order lines and habits by
    difference (recompute.changes_create); the trend counts of those with an
    order crossing a trend window's edge (who leave the run if that is all
    and their trend holds: trend_only); the events of those with new events
    or events leaving or entering the window; the rest cannot have changed
    (only the day did). None (everyone) when there is no earlier run, or the
    rules or the churn fit changed since."""
    previous = RecomputeRun.objects.filter(status=RunStatus.DONE, full=True).order_by("-started_at").first()
    last = RecomputeRun.objects.filter(status=RunStatus.DONE, reason=ChangeReason.NIGHTLY).order_by("-started_at").first()
    if previous is None:
        return None
    base = last if last and last.started_at > previous.started_at else previous
    if _rules_changed_since(base.started_at):
        return None
    fit = _churn_fit_for(as_of, SegmentSettings.current(), refit=False)
    if fit is not None and fit.fitted_at > base.finished_at:
        return None  # a fit stored since (churn_fit --save) rates everyone anew
    prev_as_of = base.as_of
    if prev_as_of >= as_of:
        prev_as_of = as_of - dt.timedelta(days=1)
    lines: set[int] = set(Order.objects.filter(id__gt=base.max_order_id).values_list("member_id", flat=True))
    # Orders changed since (a refund or an edit of an old order, by file, API or admin): their members are read whole.
    whole: set[int] = set(Order.objects.filter(changed_at__gte=base.started_at).values_list("member_id", flat=True))
    lines |= whole

    def crossing(days: int) -> tuple[dt.datetime, dt.datetime]:
        # Dates whose age went from <= days to > days between the two as-of dates.
        return recompute.local_midnight(prev_as_of - dt.timedelta(days=days)), recompute.local_midnight(as_of - dt.timedelta(days=days))

    # What left a window: from its start on the earlier date to its start on this one.
    before, after = recompute.Bounds(prev_as_of), recompute.Bounds(as_of)
    start, end = before.window_start, after.window_start
    lines.update(Order.objects.filter(ordered_at__gte=start, ordered_at__lt=end).values_list("member_id", flat=True))
    # What entered it though recorded earlier: dated after the earlier as-of date (a pre-order, a clock ahead).
    entering = {"ordered_at__gte": before.end, "ordered_at__lt": after.end, "id__lte": base.max_order_id}
    lines.update(Order.objects.filter(**entering).values_list("member_id", flat=True))
    trend: set[int] = set()
    for window in ("recent_start", "prior_start"):
        trend.update(Order.objects.filter(ordered_at__gte=getattr(before, window), ordered_at__lt=getattr(after, window)).values_list("member_id", flat=True))
    trend -= lines
    events: set[int] = set(EngagementEvent.objects.filter(id__gt=base.max_event_id).values_list("member_id", flat=True))
    events.update(EngagementEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end).values_list("member_id", flat=True))
    events.update(
        EngagementEvent.objects.filter(occurred_at__gte=before.end, occurred_at__lt=after.end, id__lte=base.max_event_id).values_list("member_id", flat=True)
    )
    ids: set[int] = lines | events  # the members in scope for more than a trend count
    for days in _recency_thresholds():
        start, end = crossing(days)
        ids.update(MemberMetrics.objects.filter(last_order_at__gte=start, last_order_at__lt=end).values_list("member_id", flat=True))
    for days in _registered_thresholds():
        start, end = crossing(days)
        ids.update(Member.objects.filter(registered_at__gte=start, registered_at__lt=end).values_list("id", flat=True))
    ids.update(
        TierPin.objects.filter(
            Q(starts_on__gt=prev_as_of, starts_on__lte=as_of) | Q(ends_on__gte=prev_as_of, ends_on__lt=as_of)
        ).values_list("member_id", flat=True)
    )
    if fit is None:  # the heuristic, of a shop too small for a fit: score everyone
        ids.update(_risk_band_movers(as_of, fit))
    else:  # each band moves on a day the run that scored it stored, by index
        ids.update(MemberMetrics.objects.filter(band_moves_on__lte=as_of).values_list("member_id", flat=True))
    return recompute.NightlyScope(
        sorted(ids | trend), lines, trend, events, trend_only=trend - ids, base_as_of=base.as_of, base_max_order_id=base.max_order_id,
        whole=whole,
    )


def _rules_changed_since(moment: dt.datetime) -> bool:
    from crm.models import AuditEvent

    return AuditEvent.objects.filter(at__gte=moment, action=AuditAction.RULES).exists()


def _recency_thresholds() -> set[int]:
    days = {tier.max_recency_days for tier in Tier.objects.exclude(max_recency_days=None)}
    for circle in Circle.objects.filter(active=True):
        for name in ("recency_min", "recency_max"):
            if name in circle.rules:
                value = int(float(circle.rules[name]))
                days.add(value if name == "recency_max" else value - 1)
    return {day for day in days if day is not None and day >= 0}


def _registered_thresholds() -> set[int]:
    return {
        int(float(circle.rules["registered_days_min"])) - 1
        for circle in Circle.objects.filter(active=True)
        if "registered_days_min" in circle.rules
    }


def _risk_band_movers(as_of: dt.date, fit: ChurnFit | None) -> list[int]:
    """Members whose stored churn band differs from today's (P(alive) drifts as time passes)."""
    config = SegmentSettings.current()
    with connection.cursor() as cursor:
        inputs = recompute.churn_inputs(cursor, as_of, staged=False)
    if inputs.x.size == 0:
        return []
    p, _expected = recompute.churn_scores(inputs, fit, config)
    bands = churn.risk_band(p, high_below=config.risk_high_below, medium_below=config.risk_medium_below)
    today = np.zeros(bands.size, dtype=np.int64)
    for number, name in enumerate(recompute.BANDS):
        today[bands == name] = number
    return inputs.member_ids[today != inputs.stored_band].tolist()


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
                change = TierChange.objects.create(
                    member_id=review.member_id, from_tier_id=metrics.tier_id, to_tier=review.to_tier,
                    reason=ChangeReason.REVIEW, note=str(review.largest_order),
                )
                _group_move_for(change)
                MemberMetrics.objects.filter(pk=metrics.pk).update(tier=review.to_tier, tier_since=timezone.now())
    tiers_recompute(member_ids=[review.member_id], reason=ChangeReason.REVIEW, requested_by=user)


def _group_move_for(change: TierChange) -> None:
    """The same to-do the recompute writes for its moves (recompute.tier_changes_write)."""
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
    ladder = ladder_load()
    last_date = timezone.localtime(metrics.last_order_at).date() if metrics.last_order_at else None
    rfm = RFM(recency_days=recency_days(last_date, as_of), orders_365=metrics.orders_365, spend_365=metrics.spend_365)
    current = next((rung for rung in ladder if rung.id == metrics.tier_id), None) or tier_for(rfm, ladder)
    bounds = recompute.Bounds(as_of)
    counts = Order.objects.filter(member=member, status=OrderStatus.PAID, ordered_at__gte=bounds.prior_start, ordered_at__lt=bounds.end).aggregate(
        recent=Count("id", filter=Q(ordered_at__gte=bounds.recent_start)), prior=Count("id", filter=Q(ordered_at__lt=bounds.recent_start))
    )
    return {
        "metrics": metrics,
        # Counted here: a nightly run leaves the stored counts as they are while the trend holds.
        "orders_30d": counts["recent"],
        "orders_prior_90d": counts["prior"],
        "recency_days": rfm.recency_days,
        "gap": gap_to_next(rfm, current, ladder),
        "expected_next_order": _expected_next_order(metrics, as_of),
    }


def _expected_next_order(metrics: MemberMetrics, as_of: dt.date) -> dt.date | None:
    if not metrics.expected_orders_30d or metrics.expected_orders_30d < 0.05:
        return None
    return as_of + dt.timedelta(days=round(recompute.CHURN_HORIZON_DAYS / metrics.expected_orders_30d))


def ladder_preview(ladder: Sequence[Rung], *, as_of: dt.date | None = None) -> list[tuple[int | None, int, int]]:
    """How many members a candidate ladder would move: (current tier id, new tier id, members), moves only.
    Pins and reviews are left out; the recompute applies them after saving."""
    bounds = recompute.Bounds(as_of or timezone.localdate())
    spend = recompute._sql("CAST(m.spend_365 * 100 AS BIGINT)", "CAST(ROUND(m.spend_365 * 100) AS INTEGER)")
    case, params = recompute.tier_case_sql(ladder, bounds, last="m.last_order_at", orders="m.orders_365", spend_cents=spend)
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


def circle_materialise(circle: Circle, *, as_of: dt.date | None = None) -> int:
    """Rebuild one circle's membership for everyone (after its rules were edited)."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        recompute.circles_write(cursor, [circle], as_of or timezone.localdate(), True, now)
    circle.refresh_from_db()
    return circle.member_count
