"""Invite rewards given: each member's milestones reached and not yet rewarded get their coupon."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from campaigns.invites.models import InviteReward, InviteSettings, milestones_parse
from campaigns.rewards import coupon_issue
from crm.bulkload import ids_in
from crm.models import EngagementEvent, EngagementKind, Member
from segments.days import local_midnight


def _invites(program: InviteSettings, now: dt.datetime):
    """The invite events that count by now: from the programme's first day (its Beijing midnight), of members not erased."""
    return EngagementEvent.objects.filter(kind=EngagementKind.INVITE, occurred_at__gte=local_midnight(program.counts_from),
                                          occurred_at__lte=now, member__erased_at__isnull=True)


@dataclass(frozen=True)
class InviteProgress:
    """Where a member stands in the invite programme, as he and the staff who answer him see it."""

    active: bool
    counts_from: dt.date
    offer: str  # 邀1位好友得¥5，邀3位好友得¥20 (empty while off)
    friends: int  # invited since counts_from
    next_friends: int | None  # the next milestone above his friends, if any
    next_value: Decimal | None

    @property
    def friends_missing(self) -> int | None:
        return None if self.next_friends is None else self.next_friends - self.friends


def invite_progress(member: Member, *, now: dt.datetime | None = None) -> InviteProgress:
    program = InviteSettings.current()
    now = now or timezone.now()
    friends = _invites(program, now).filter(member=member).aggregate(n=Sum("count"))["n"] or 0
    ahead = [(n, value) for n, value in milestones_parse(program.milestones) if n > friends] if program.active else []
    next_friends, next_value = ahead[0] if ahead else (None, None)
    return InviteProgress(program.active, program.counts_from, program.offer_text(), friends, next_friends, next_value)


def invite_rewards_grant(member_ids: list[int] | None = None, *, now: dt.datetime | None = None) -> int:
    """Gives the coupons of every milestone reached by now (or only those members'); returns how many.

    Safe to run any number of times, from several workers at once: a reward is one row per
    member and milestone, written with its coupon in one transaction."""
    program = InviteSettings.current()
    if not program.active:
        return 0
    now = now or timezone.now()
    milestones = milestones_parse(program.milestones)
    invites = _invites(program, now)
    rewards = InviteReward.objects.all()
    if member_ids is not None:
        invites, rewards = invites.filter(member_id__in=ids_in(member_ids)), rewards.filter(member_id__in=ids_in(member_ids))
    # Who is owed anything: friends enough for a milestone he has no reward for (the milestones
    # may have been changed since his last one).
    totals = invites.values("member_id").annotate(friends=Sum("count")).filter(friends__gte=milestones[0][0]).values_list("member_id", "friends")
    given = defaultdict(set)
    for member_id, friends in rewards.values_list("member_id", "friends"):
        given[member_id].add(friends)
    owed = [member_id for member_id, friends in totals if any(n <= friends and n not in given[member_id] for n, _ in milestones)]
    granted = 0
    for member_id in owed:
        granted += _member_grant(member_id, invites.filter(member_id=member_id), milestones, given[member_id], program.coupon_days, now)
    return granted


def _member_grant(member_id: int, invites, milestones, done: set[int], days: int, now: dt.datetime) -> int:
    reached, friends = {}, 0
    for occurred_at, count in invites.order_by("occurred_at", "id").values_list("occurred_at", "count"):
        friends += count
        for n, value in milestones:
            if n <= friends and n not in reached:
                reached[n] = (occurred_at, value)
    member = Member.objects.get(pk=member_id)
    granted = 0
    for n, (occurred_at, value) in sorted(reached.items()):
        if n in done:
            continue
        try:
            with transaction.atomic():
                reward = InviteReward.objects.create(member=member, friends=n, value=value, reached_at=occurred_at, created_at=now)
                reward.coupon = coupon_issue(member=member, value=value, threshold=None, days=days, now=now)
                reward.save(update_fields=["coupon"])
        except IntegrityError:  # another worker gave it a moment ago
            continue
        granted += 1
    return granted
