"""The group leader's daily worklist: whom to contact in person today, why, and
what to say; and how well each leader follows up.

worklist_build(day) finds the candidates of each kind with one query each,
keeps one item per member (the highest priority; the other reasons are named
too), keeps the top items of each leader, and renders each item's script from
its rule's template with the same context as messages. Running it again the
same day keeps what leaders already marked and adds what is new."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils import translation
from django.utils.translation import gettext as _

from campaigns.worklist.models import WorklistItem, WorklistKind, WorklistRule, WorklistSettings
from campaigns.rendering import contexts_for
from campaigns.templating import compile_template, render
from crm.models import Member
from crm.services import birthday_on
from segments.days import local_midnight
from segments.models import CircleMembership, GroupMove, GroupMoveStatus, MemberMetrics, RiskBand, TierChange

FOLLOW_UP_DAYS = 30


@dataclass
class Candidate:
    member_id: int
    kind: str
    reason: str
    weight: float = 0.0  # ranks members within a kind: spend


def _days_since(moment: dt.datetime | None, today: dt.date) -> int | None:
    return (today - timezone.localdate(moment)).days if moment else None


def _candidates(day: dt.date, now: dt.datetime, settings: WorklistSettings, kinds: set[str]) -> list[Candidate]:
    """Every reason to call a member today, one query per kind."""
    led = MemberMetrics.objects.filter(member__erased_at__isnull=True, member__community__leader__isnull=False)
    fields = ("member_id", "last_order_at", "spend_365", "first_order_at")
    found: list[Candidate] = []
    vip_rank = settings.vip_tier.rank if settings.vip_tier_id else None
    if WorklistKind.AT_RISK in kinds and vip_rank is not None:
        valuable = Q(tier__rank__gte=vip_rank) | Q(spend_365__gte=settings.high_value_spend)
        for row in led.filter(valuable, risk_band=RiskBand.HIGH).values(*fields):
            days = _days_since(row["last_order_at"], day)
            found.append(Candidate(row["member_id"], WorklistKind.AT_RISK, _("spent ¥%(spend)s in a year, high churn risk, %(days)s days since the last order") % {"spend": f"{row['spend_365']:.0f}", "days": days}, float(row["spend_365"])))
    if WorklistKind.DORMANT_VIP in kinds and vip_rank is not None and settings.dormant_circle_id:
        was_vip = TierChange.objects.filter(member_id=OuterRef("member_id"), to_tier__rank__gte=vip_rank)
        dormant = CircleMembership.objects.filter(circle_id=settings.dormant_circle_id, member_id=OuterRef("member_id"))
        rows = led.filter(Exists(dormant)).filter(Q(tier__rank__gte=vip_rank) | Exists(was_vip)).values(*fields)
        for row in rows:
            days = _days_since(row["last_order_at"], day)
            found.append(Candidate(row["member_id"], WorklistKind.DORMANT_VIP, _("was a high-value member, no order for %(days)s days") % {"days": days}, float(row["spend_365"])))
    if WorklistKind.BIRTHDAY in kinds:
        born = Member.objects.filter(birthday_on(day), erased_at__isnull=True, community__leader__isnull=False).values_list("pk", flat=True)
        found += [Candidate(pk, WorklistKind.BIRTHDAY, _("birthday today")) for pk in born]
    if WorklistKind.NO_SECOND in kinds:
        # Days since the first order as calendar days (Beijing time), as the reason counts them.
        start = local_midnight(day - dt.timedelta(days=settings.new_member_to_days))
        end = local_midnight(day - dt.timedelta(days=settings.new_member_from_days - 1))
        for row in led.filter(orders_total=1, first_order_at__gte=start, first_order_at__lt=end).values(*fields):
            days = _days_since(row["first_order_at"], day)
            found.append(Candidate(row["member_id"], WorklistKind.NO_SECOND, _("first order %(days)s days ago, no second order yet") % {"days": days}, float(row["spend_365"])))
    if WorklistKind.GROUP_MOVE in kinds:
        moves = GroupMove.objects.filter(
            status=GroupMoveStatus.PENDING, member__erased_at__isnull=True, member__community__leader__isnull=False
        ).values_list("member_id", "change__to_tier__name", "to_community__name")
        for member_id, tier, community in moves:
            reason = _("now %(tier)s: invite to %(community)s") % {"tier": tier, "community": community or "—"}
            found.append(Candidate(member_id, WorklistKind.GROUP_MOVE, reason))
    return found


def worklist_build(day: dt.date | None = None, *, now: dt.datetime | None = None) -> int:
    """Write the day's worklist for every leader; returns how many items were added."""
    now = now or timezone.now()
    day = day or timezone.localdate(now)
    settings = WorklistSettings.current()
    rules = {rule.kind: rule for rule in WorklistRule.objects.filter(active=True)}
    with translation.override(django_settings.LANGUAGE_CODE):  # the reasons are stored in the product's language
        found = _candidates(day, now, settings, set(rules))
    # One item per member: the reason of the highest priority first, the others after it.
    per_member: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in found:
        per_member[candidate.member_id].append(candidate)
    for reasons in per_member.values():
        reasons.sort(key=lambda c: -rules[c.kind].priority)
    members = {
        row["pk"]: row
        for row in Member.objects.filter(pk__in=list(per_member)).values("pk", "community_id", "community__leader_id")
    }
    with transaction.atomic():
        WorklistItem.objects.filter(day=day, outcome="").delete()
        taken = dict(
            WorklistItem.objects.filter(day=day).values_list("leader_id").annotate(n=Count("id")).values_list("leader_id", "n")
        )
        listed = set(WorklistItem.objects.filter(day=day).values_list("member_id", flat=True))
        by_leader: dict[int, list[int]] = defaultdict(list)
        for member_id, reasons in per_member.items():
            member = members.get(member_id)
            if member is None or member["community__leader_id"] is None or member_id in listed:
                continue
            by_leader[member["community__leader_id"]].append(member_id)
        chosen: list[int] = []
        for leader_id, member_ids in by_leader.items():
            member_ids.sort(key=lambda pk: (-rules[per_member[pk][0].kind].priority, -per_member[pk][0].weight, pk))
            room = max(0, settings.per_leader - taken.get(leader_id, 0))
            chosen += member_ids[:room]
        contexts = contexts_for(chosen, now=now)
        scripts = {kind: compile_template(rule.script) for kind, rule in rules.items()}
        items = []
        for member_id in chosen:
            reasons = per_member[member_id]
            top = reasons[0]
            member = members[member_id]
            items.append(
                WorklistItem(
                    day=day,
                    leader_id=member["community__leader_id"],
                    community_id=member["community_id"],
                    member_id=member_id,
                    kind=top.kind,
                    priority=rules[top.kind].priority,
                    reason="；".join(c.reason for c in reasons)[:200],
                    script=render(scripts[top.kind], contexts.get(member_id, {}))[:300],
                )
            )
        WorklistItem.objects.bulk_create(items, batch_size=2000, ignore_conflicts=True)
    return len(items)


def follow_up_rates(leaders=None, *, today: dt.date | None = None, days: int = FOLLOW_UP_DAYS) -> list[dict]:
    """Per leader over the last days: items listed, marked, the share marked, and how many ordered."""
    today = today or timezone.localdate()
    items = WorklistItem.objects.filter(day__gt=today - dt.timedelta(days=days), day__lte=today)
    if leaders is not None:
        items = items.filter(leader__in=leaders)
    rows = (
        items.values("leader_id", "leader__display_name")
        .annotate(listed=Count("id"), marked=Count("id", filter=~Q(outcome="")), ordered=Count("id", filter=Q(outcome="ordered")))
        .order_by("leader__display_name")
    )
    return [
        {
            "leader_id": row["leader_id"],
            "leader": row["leader__display_name"],
            "listed": row["listed"],
            "marked": row["marked"],
            "ordered": row["ordered"],
            "rate": row["marked"] / row["listed"] if row["listed"] else 0.0,
        }
        for row in rows
    ]
