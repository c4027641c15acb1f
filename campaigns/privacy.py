"""What campaigns hold about a member, for the PIPL export (crm.privacy).

Erasure needs no hook: the member's contacts are blanked and every consent
withdrawn by crm, so the send-time checks skip any message still queued;
delivery rows stay as the record of what was sent."""

from __future__ import annotations

from typing import Any

from campaigns.models import Coupon, Delivery
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


def register() -> None:
    names = {name for name, _build in privacy.SECTIONS}
    for name, build in (("messages", _messages), ("coupons", _coupons)):
        if name not in names:
            privacy.SECTIONS.append((name, build))
