"""What campaigns hold about a member, for the PIPL export (crm.privacy), and
what an erasure removes here.

crm blanks the member's contacts and withdraws every consent, so the send-time
checks skip any message still queued; delivery rows stay as the record of what
was sent. The erasure hook ends the member's journeys and deletes his worklist
items, whose scripts address him by name."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from campaigns.invites.models import InviteReward
from campaigns.models import Coupon, Delivery
from campaigns.worklist.models import WorklistItem
from campaigns.journeys.models import Enrolment, EnrolmentStatus, ExitReason
from crm import privacy
from crm.models import Member


def _messages(member: Member) -> list[dict[str, Any]]:
    return [
        {
            "campaign": row["campaign__name"],
            "channel": row["channel"],
            "status": row["status"],
            "skipped_because": row["skip_reason"],
            "sent_at": row["sent_at"].isoformat() if row["sent_at"] else None,
        }
        for row in Delivery.objects.filter(member=member).order_by("created_at").values(
            "campaign__name", "channel", "status", "skip_reason", "sent_at"
        )
    ]


def _coupons(member: Member) -> list[dict[str, Any]]:
    return [
        {
            "code": coupon.code,
            "what": coupon.describe(),
            "valid_until": coupon.valid_until.isoformat(),
            "redeemed_at": coupon.redeemed_at.isoformat() if coupon.redeemed_at else None,
        }
        for coupon in Coupon.objects.filter(member=member).select_related("category").order_by("valid_from")
    ]


def _invite_rewards(member: Member) -> list[dict[str, Any]]:
    return [
        {"friends_invited": reward.friends, "value": str(reward.value), "reached_at": reward.reached_at.isoformat(),
         "coupon": reward.coupon.code if reward.coupon else None}
        for reward in InviteReward.objects.filter(member=member).select_related("coupon").order_by("friends")
    ]


def _journeys(member: Member) -> list[dict[str, Any]]:
    return [
        {
            "journey": row["journey__name"],
            "started_at": row["started_at"].isoformat(),
            "status": row["status"],
            "left_because": row["exit_reason"],
        }
        for row in Enrolment.objects.filter(member=member).order_by("enrolled_at").values("journey__name", "started_at", "status", "exit_reason")
    ]


def _worklist(member: Member) -> list[dict[str, Any]]:
    return [
        {"day": row["day"].isoformat(), "why": row["reason"], "script": row["script"], "outcome": row["outcome"], "note": row["note"]}
        for row in WorklistItem.objects.filter(member=member).order_by("day").values("day", "reason", "script", "outcome", "note")
    ]


def _erase(member: Member) -> None:
    Enrolment.objects.filter(member=member, status=EnrolmentStatus.ACTIVE).update(
        status=EnrolmentStatus.EXITED, exit_reason=ExitReason.STOPPED, ended_at=timezone.now(), next_step=None
    )
    WorklistItem.objects.filter(member=member).delete()


def register() -> None:
    names = {name for name, _build in privacy.SECTIONS}
    for name, build in (("messages", _messages), ("coupons", _coupons), ("invite_rewards", _invite_rewards), ("journeys", _journeys), ("worklist", _worklist)):
        if name not in names:
            privacy.SECTIONS.append((name, build))
    if _erase not in privacy.ERASE_HOOKS:
        privacy.ERASE_HOOKS.append(_erase)
