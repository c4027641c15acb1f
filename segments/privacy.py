"""What segments holds about a member, for the PIPL export and erasure (crm.privacy)."""

from __future__ import annotations

from typing import Any

from crm import privacy
from crm.models import Member
from segments.models import CircleMembership, MemberMetrics, TierChange, TierPin, TierReview


def _tier(member: Member) -> dict[str, Any]:
    metrics = MemberMetrics.objects.select_related("tier").filter(member=member).first()
    return {
        "current": metrics.tier.code if metrics and metrics.tier else None,
        "since": metrics.tier_since.isoformat() if metrics and metrics.tier_since else None,
        "history": [
            {
                "from": change.from_tier.code if change.from_tier else None,
                "to": change.to_tier.code,
                "at": change.at.isoformat(),
                "why": change.reason,
            }
            for change in TierChange.objects.filter(member=member).select_related("from_tier", "to_tier").order_by("at", "id")
        ],
        "pins": [
            {"tier": pin.tier.code, "from": pin.starts_on.isoformat(), "until": pin.ends_on.isoformat(), "reason": pin.reason}
            for pin in TierPin.objects.filter(member=member).select_related("tier").order_by("created_at")
        ],
        "reviews": [
            {"to": review.to_tier.code, "status": review.status, "at": review.created_at.isoformat()}
            for review in TierReview.objects.filter(member=member).select_related("to_tier").order_by("created_at")
        ],
    }


def _metrics(member: Member) -> dict[str, Any] | None:
    metrics = MemberMetrics.objects.filter(member=member).select_related("favourite_category").first()
    if metrics is None:
        return None
    return {
        "orders_365": metrics.orders_365,
        "spend_365": str(metrics.spend_365),
        "average_order_value": str(metrics.avg_order_value),
        "promo_share": metrics.promo_share,
        "return_rate": metrics.refund_rate,
        "favourite_category": metrics.favourite_category.name if metrics.favourite_category else None,
        "usual_order_hour": metrics.usual_order_hour,
        "v_score": metrics.v_score,
        "p_alive": metrics.p_alive,
        "churn_risk": metrics.risk_band,
    }


def _circles(member: Member) -> list[dict[str, Any]]:
    return [
        {"circle": membership.circle.name, "since": membership.since.isoformat()}
        for membership in CircleMembership.objects.filter(member=member).select_related("circle").order_by("circle__name")
    ]


def _erase(member: Member) -> None:
    # Circles come from personal traits too (gender, age, household): an erased member is in none.
    CircleMembership.objects.filter(member=member).delete()


def register() -> None:
    names = {name for name, _build in privacy.SECTIONS}
    for name, build in (("tier", _tier), ("metrics", _metrics), ("circles", _circles)):
        if name not in names:
            privacy.SECTIONS.append((name, build))
    if _erase not in privacy.ERASE_HOOKS:
        privacy.ERASE_HOOKS.append(_erase)
