"""A nightly run's scope: the members whose tier or circle inputs can have
changed since the last successful run, and what the run reads again of each."""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.db import connection
from django.db.models import Q

from crm.models import AuditAction, Departure, EngagementEvent, Member, Order, OrderLine, Product
from segments import churn
from segments.days import local_midnight
from segments.models import (
    ChangeReason,
    ChurnFit,
    Circle,
    MemberMetrics,
    RecomputeRun,
    RunStatus,
    SegmentSettings,
    Tier,
    TierPin,
)
from segments.recompute.base import Bounds
from segments.recompute.fit import fit_for
from segments.recompute.scope import NightlyScope
from segments.recompute.scores import BANDS, churn_inputs, churn_scores


def nightly_scope(as_of: dt.date) -> NightlyScope | None:
    """Members whose tier or circle inputs can have changed since the last
    successful run: new members, new and changed orders, orders that left a member (moved
    or deleted), new, changed and deleted events (a safety net for lost per-member
    tasks), members whose recency crossed a rule's day count, orders, events
    and registrations leaving a window, pins starting or ending, and churn
    bands whose stored move day has come. With them, what the run reads
    again: the order aggregates of the members with new orders or an order
    leaving the 365-day window (or entering it: recorded before the last run,
    dated after its as-of date), with their order lines and habits by
    difference (scope.changes_create); the trend counts of those with an
    order crossing a trend window's edge (who leave the run if that is all
    and their trend holds: trend_only); the events of those with new events
    or events leaving or entering the window; the rest cannot have changed
    (only the day did). None (everyone) when there is no earlier run, or the
    rules, the churn fit or a product's category changed since."""
    previous = RecomputeRun.objects.filter(status=RunStatus.DONE, full=True).order_by("-started_at").first()
    last = RecomputeRun.objects.filter(status=RunStatus.DONE, reason=ChangeReason.NIGHTLY).order_by("-started_at").first()
    if previous is None:
        return None
    base = last if last and last.started_at > previous.started_at else previous
    if _rules_changed_since(base.started_at):
        return None
    if Product.objects.filter(recategorised_at__gte=base.started_at).exists():
        return None  # a product in another category: the favourite categories of all who bought it
    fit = fit_for(as_of, SegmentSettings.current(), refit=False)
    if fit is not None and fit.fitted_at > base.finished_at:
        return None  # a fit stored since (churn_fit --save) rates everyone anew
    prev_as_of = base.as_of
    if prev_as_of >= as_of:
        prev_as_of = as_of - dt.timedelta(days=1)
    lines: set[int] = set(Order.objects.filter(id__gt=base.max_order_id).values_list("member_id", flat=True))
    # Orders changed since (a refund or an edit of an old order, by file, API or admin): their members are read whole.
    whole: set[int] = set(Order.objects.filter(changed_at__gte=base.started_at).values_list("member_id", flat=True))
    # And the members an order left since (moved to another, deleted): their stored figures still count it.
    departed = Departure.objects.filter(at__gte=base.started_at)
    whole.update(departed.filter(kind=Departure.Kind.ORDER).values_list("member_id", flat=True))
    # Lines that came to an order a run had read already (a lines file a day after its orders, a
    # line added in the admin): that member's stored line sums lack them. Through the lines' key.
    whole.update(
        OrderLine.objects.filter(id__gt=base.max_line_id, order_id__lte=base.max_order_id).values_list("order__member_id", flat=True)
    )
    lines |= whole

    def crossing(days: int) -> tuple[dt.datetime, dt.datetime]:
        # Dates whose age went from <= days to > days between the two as-of dates.
        return local_midnight(prev_as_of - dt.timedelta(days=days)), local_midnight(as_of - dt.timedelta(days=days))

    # What left a window: from its start on the earlier date to its start on this one.
    before, after = Bounds(prev_as_of), Bounds(as_of)
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
    events.update(departed.filter(kind=Departure.Kind.EVENT).values_list("member_id", flat=True))  # an event deleted
    events.update(EngagementEvent.objects.filter(changed_at__gte=base.started_at).values_list("member_id", flat=True))  # or its count corrected
    events.update(EngagementEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end).values_list("member_id", flat=True))
    events.update(
        EngagementEvent.objects.filter(occurred_at__gte=before.end, occurred_at__lt=after.end, id__lte=base.max_event_id).values_list("member_id", flat=True)
    )
    ids: set[int] = lines | events  # the members in scope for more than a trend count
    # Members added since without an order (in the admin: an import and an order recompute their
    # members at once): circles over their own fields (a household flag, community) take them in.
    if base.max_member_id is not None:
        ids.update(Member.objects.filter(id__gt=base.max_member_id).values_list("id", flat=True))
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
    return NightlyScope(
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
        inputs = churn_inputs(cursor, as_of, staged=False)
    if inputs.x.size == 0:
        return []
    p, _expected = churn_scores(inputs, fit, config)
    bands = churn.risk_band(p, high_below=config.risk_high_below, medium_below=config.risk_medium_below)
    today = np.zeros(bands.size, dtype=np.int64)
    for number, name in enumerate(BANDS):
        today[bands == name] = number
    return inputs.member_ids[today != inputs.stored_band].tolist()
