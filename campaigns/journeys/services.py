"""Journeys at work: enrol members when a trigger fires, end enrolments whose
exit condition holds, and write each due step's messages into the outbox.

`journeys_run` is one periodic pass and is safe to run twice or from two
processes at once: a trigger enrols a member once (unique member, journey and
trigger key), a member is in a journey once at a time (a partial unique index
on active enrolments), and a step reaches an enrolment once (unique campaign
and enrolment on the outbox, INSERT … ON CONFLICT DO NOTHING). A step's
messages go through the campaign pipeline (campaigns.audience.select_sql), so
consent, the opt-out, the frequency cap and quiet hours hold exactly as for
campaigns. An enrolment moves to its next step only once its message for this
step is in the outbox. Everything here is set-based: a handful of statements
per journey and step, whatever the number of members."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Exists, F, Min, OuterRef, Q
from django.utils import timezone

from campaigns.audience import COLUMNS, Source, select_sql
from campaigns.invites.models import InviteReward
from campaigns.models import Delivery, DeliveryStatus, SendingPolicy, SkipReason
from campaigns.journeys.models import Enrolment, EnrolmentStatus, ExitReason, Journey, JourneyStep, JourneyTrigger
from campaigns.policy import Rules
from campaigns.split import JOURNEY_CONTROL, bucket
from crm.models import Consent, Member, Order, OrderStatus
from crm.services import birthday_on
from loyalty.balances import EXPIRING_DAYS
from loyalty.models import Balance, PointsEntry
from segments.days import local_midnight
from segments.models import CircleMembership, TierChange



@dataclass(frozen=True)
class Trigger:
    member_id: int
    key: str
    started_at: dt.datetime
    tier_id: int | None = None
    coupon_id: int | None = None


def triggers(journey: Journey, now: dt.datetime) -> list[Trigger]:
    """The members whose trigger fired within the journey's catch-up window."""
    since = now - dt.timedelta(days=journey.catch_up_days, hours=1)
    live = Member.objects.filter(erased_at__isnull=True)
    if journey.trigger == JourneyTrigger.FIRST_ORDER:
        paid = Order.objects.filter(status=OrderStatus.PAID)
        recent = paid.filter(ordered_at__gte=since, ordered_at__lte=now).values("member_id")
        firsts = (
            paid.filter(member_id__in=recent, member__erased_at__isnull=True)
            .values("member_id")
            .annotate(first=Min("ordered_at"))
            .filter(first__gte=since, first__lte=now)
        )
        return [Trigger(row["member_id"], "first_order", row["first"]) for row in firsts]
    if journey.trigger == JourneyTrigger.NO_ORDER:
        # N calendar days after the registration's day (Beijing time), from that day's midnight: the
        # day the circle 注册7天未下单 takes him (registered_days_min), whatever the hour he registered.
        days = dt.timedelta(days=journey.trigger_days)
        cutoff = local_midnight(timezone.localdate(now) - days + dt.timedelta(days=1))
        members = live.filter(registered_at__gte=since - days, registered_at__lt=cutoff).exclude(
            Exists(Order.objects.filter(member_id=OuterRef("pk"), status=OrderStatus.PAID))
        )
        return [
            Trigger(pk, "no_order", local_midnight(timezone.localdate(registered) + days))
            for pk, registered in members.values_list("pk", "registered_at")
        ]
    if journey.trigger == JourneyTrigger.CIRCLE:
        # A member's first evaluation (the recompute after his import) places him in his
        # circles; that is not an entry, as a first tier is not a move up. It writes his
        # first TierChange (from nothing) with the same timestamp as the memberships.
        first_placement = TierChange.objects.filter(member_id=OuterRef("member_id"), from_tier__isnull=True, at=OuterRef("since"))
        rows = (
            CircleMembership.objects.filter(
                circle_id=journey.trigger_circle_id, since__gte=since, since__lte=now, member__erased_at__isnull=True
            )
            .exclude(Exists(first_placement))
            .values_list("member_id", "since")
        )
        return [Trigger(member_id, f"circle:{int(entered.timestamp())}", entered) for member_id, entered in rows]
    if journey.trigger == JourneyTrigger.TIER_UP:
        rows = TierChange.objects.filter(
            at__gte=since, at__lte=now, from_tier__isnull=False, to_tier__rank__gt=F("from_tier__rank"), member__erased_at__isnull=True
        ).values_list("member_id", "pk", "at", "to_tier_id")
        return [Trigger(member_id, f"tierchange:{pk}", at, tier_id) for member_id, pk, at, tier_id in rows]
    if journey.trigger == JourneyTrigger.BIRTHDAY:
        today = timezone.localdate(now)
        started = local_midnight(today)
        return [Trigger(pk, f"birthday:{today.year}", started) for pk in live.filter(birthday_on(today)).values_list("pk", flat=True)]
    if journey.trigger == JourneyTrigger.POINTS_DUE:
        # Entered the 30 days before a points expiry with points left to lose (the stored balance's
        # "expiring"): once per member and expiry day, when the window opens.
        window = dt.timedelta(days=EXPIRING_DAYS)
        rows = (
            PointsEntry.objects.filter(expires_at__gt=since + window, expires_at__lte=now + window, member__erased_at__isnull=True)
            .filter(member_id__in=Balance.objects.filter(expiring__gt=0).values("member_id"))
            .values_list("member_id", "expires_at")
            .distinct()
        )
        return [
            Trigger(member_id, f"points_due:{timezone.localtime(expires_at):%Y%m%d}", expires_at - window)
            for member_id, expires_at in rows
        ]
    if journey.trigger == JourneyTrigger.INVITE_REWARD:
        # Once per reward given; rewards a member got together (one row of three friends reaches
        # 1 and 3 at once) start one enrolment, the newest (the higher milestone) speaking for them.
        newest: dict[int, tuple] = {}
        rows = (
            InviteReward.objects.filter(created_at__gte=since, created_at__lte=now, coupon__isnull=False, member__erased_at__isnull=True)
            .order_by("member_id", "created_at", "friends")
            .values_list("member_id", "pk", "created_at", "coupon_id")
        )
        for member_id, pk, given, coupon_id in rows:
            newest[member_id] = (pk, given, coupon_id)
        return [Trigger(member_id, f"invite_reward:{pk}", given, coupon_id=coupon_id) for member_id, (pk, given, coupon_id) in newest.items()]
    return []


def _in_control(member_id: int, journey: Journey) -> bool:
    """A draw of the journey's own, like a campaign's control group (campaigns.split)."""
    return bucket(JOURNEY_CONTROL, journey.pk, member_id) < journey.control_share * 100


def enrol(journey: Journey, now: dt.datetime) -> int:
    """Enrol the members whose trigger fired; returns how many were enrolled now."""
    first_step = journey.steps.order_by("day").first()
    if first_step is None:
        return 0
    found = triggers(journey, now)
    if not found:
        return 0
    exclusive = journey.priority > 0
    blocked: set[int] = set()
    if exclusive:
        # A member following a journey of equal or higher precedence does not start this one.
        blocked = set(
            Enrolment.objects.filter(
                status=EnrolmentStatus.ACTIVE, journey__priority__gte=journey.priority, member_id__in={t.member_id for t in found}
            )
            .exclude(journey=journey)
            .values_list("member_id", flat=True)
        )
    rows = [
        Enrolment(
            journey=journey, member_id=t.member_id, key=t.key, started_at=t.started_at, enrolled_at=now,
            next_step=first_step, is_control=_in_control(t.member_id, journey), tier_id=t.tier_id, coupon_id=t.coupon_id,
        )
        for t in found
        if t.member_id not in blocked
    ]
    before = Enrolment.objects.filter(journey=journey).count()
    Enrolment.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    enrolled = Enrolment.objects.filter(journey=journey).count() - before
    if exclusive and enrolled:
        _exit(
            Enrolment.objects.filter(
                status=EnrolmentStatus.ACTIVE, journey__priority__gt=0, journey__priority__lt=journey.priority,
                member_id__in=Enrolment.objects.filter(journey=journey, status=EnrolmentStatus.ACTIVE).values("member_id"),
            ),
            ExitReason.SUPERSEDED,
            now,
        )
    return enrolled


def _exit(enrolments, reason: str, now: dt.datetime) -> int:
    ids = list(enrolments.values_list("pk", flat=True))
    if not ids:
        return 0
    count = 0
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        count += Enrolment.objects.filter(pk__in=chunk, status=EnrolmentStatus.ACTIVE).update(
            status=EnrolmentStatus.EXITED, exit_reason=reason, ended_at=now, next_step=None
        )
        Delivery.objects.filter(enrolment_id__in=chunk, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SKIPPED, skip_reason=SkipReason.EXITED
        )
    return count


def exits(now: dt.datetime) -> Counter:
    """End the active enrolments whose exit condition holds, and stop their queued messages."""
    active = Enrolment.objects.filter(status=EnrolmentStatus.ACTIVE)
    done: Counter = Counter()
    done[ExitReason.STOPPED] += _exit(active.filter(Q(journey__active=False) | Q(member__erased_at__isnull=False)), ExitReason.STOPPED, now)
    ordered = Order.objects.filter(member_id=OuterRef("member_id"), status=OrderStatus.PAID, ordered_at__gt=OuterRef("started_at"))
    done[ExitReason.ORDERED] += _exit(active.filter(journey__exit_on_order=True).filter(Exists(ordered)), ExitReason.ORDERED, now)
    withdrawn = Consent.objects.filter(member_id=OuterRef("member_id"), channel=OuterRef("next_step__campaign__channel"), granted=False)
    done[ExitReason.CONSENT] += _exit(
        active.filter(journey__exit_on_consent=True, next_step__campaign__purpose="marketing").filter(
            Q(member__personalisation_opt_out=True) | Exists(withdrawn)
        ),
        ExitReason.CONSENT,
        now,
    )
    done[ExitReason.LEFT_TIER] += _exit(
        active.filter(journey__exit_on_tier_left=True, tier__isnull=False).exclude(member__metrics__tier_id=F("tier_id")),
        ExitReason.LEFT_TIER,
        now,
    )
    return +done


def _step_source(step: JourneyStep, cutoff: dt.datetime) -> Source:
    return Source(
        from_sql="campaigns_enrolment e JOIN crm_member m ON m.id = e.member_id",
        with_sql="reached AS MATERIALIZED (SELECT enrolment_id FROM campaigns_delivery WHERE campaign_id = %s AND enrolment_id IS NOT NULL)",
        with_params=[step.campaign_id],
        where_sql="e.status = %s AND e.next_step_id = %s AND e.started_at < %s "
        "AND NOT EXISTS (SELECT 1 FROM reached r WHERE r.enrolment_id = e.id)",
        where_params=[EnrolmentStatus.ACTIVE, step.pk, cutoff],
        control_sql="e.is_control",
        enrolment_sql="e.id",
    )


def step_send(step: JourneyStep, following: JourneyStep | None, now: dt.datetime, rules: Rules) -> int:
    """Write the messages of one step for every enrolment whose day has come, and move those enrolments on.

    Step day N falls on the Nth calendar day after the day the enrolment started (Asia/Shanghai),
    from its midnight; the sending rules then choose the hour (quiet hours, the usual order hour).
    Counted in hours, an evening first order's D1 fell in the next evening's quiet hours and went
    out a day late."""
    cutoff = local_midnight(timezone.localdate(now) - dt.timedelta(days=step.day - 1))  # started before it
    sql, params = select_sql(step.campaign, now=now, rules=rules, source=_step_source(step, cutoff))
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO campaigns_delivery ({COLUMNS}) {sql} "  # nosec B608 - fixed fragments; values are parameters
                f"ON CONFLICT (campaign_id, enrolment_id) WHERE enrolment_id IS NOT NULL DO NOTHING",
                params,
            )
            written = cursor.rowcount
        moved = Enrolment.objects.filter(
            status=EnrolmentStatus.ACTIVE, next_step=step, started_at__lt=cutoff,
        ).filter(Exists(Delivery.objects.filter(campaign_id=step.campaign_id, enrolment_id=OuterRef("pk"))))
        if following is not None:
            moved.update(next_step=following)
        else:
            moved.update(next_step=None, status=EnrolmentStatus.DONE, ended_at=now)
    return written


def journeys_run(*, now: dt.datetime | None = None) -> dict:
    """One periodic pass: exits first (a member who ordered gets no further nudge), then enrolments, then due steps."""
    from campaigns.sending import dispatch

    now = now or timezone.now()
    rules = Rules.of(SendingPolicy.current())
    summary: Counter = Counter()
    summary.update({f"exit:{reason}": n for reason, n in exits(now).items()})
    # A step staff deleted leaves its enrolments with nowhere to go: they are complete.
    Enrolment.objects.filter(status=EnrolmentStatus.ACTIVE, next_step__isnull=True).update(status=EnrolmentStatus.DONE, ended_at=now)
    journeys = list(Journey.objects.filter(active=True).order_by("-priority", "pk"))
    for journey in journeys:
        summary["enrolled"] += enrol(journey, now)
    for journey in journeys:
        steps = list(journey.steps.select_related("campaign").order_by("day"))
        for step, following in zip(steps, [*steps[1:], None]):
            summary["messages"] += step_send(step, following, now, rules)
    summary["handed"] = dispatch(now=now)
    return dict(summary)
