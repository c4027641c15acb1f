"""What the loyalty programme holds about a member, for the PIPL export (crm.privacy).

An erasure changes nothing here: the ledgers hold amounts, rules and sources,
no personal data, and a balance must stay the sum of its entries (DOMAIN.md
section 7 keeps orders and amounts as proof; so are these)."""

from __future__ import annotations

from typing import Any

from crm import privacy
from crm.models import Member
from loyalty.models import Balance, GrowthEntry, PointsEntry, Redemption


def _entry(entry) -> dict[str, Any]:
    row = {
        "rule": entry.rule,
        "amount": entry.amount,
        "source": entry.source_kind,
        "source_id": entry.source_id,
        "business_time": entry.occurred_at.isoformat(),
        "recorded_at": entry.recorded_at.isoformat(),
    }
    if isinstance(entry, PointsEntry):
        row["available_at"] = entry.available_at.isoformat()
        row["expires_at"] = entry.expires_at.isoformat() if entry.expires_at else None
    return row


def _loyalty(member: Member) -> dict[str, Any]:
    balance = Balance.objects.filter(member=member).first()
    return {
        "balance": None if balance is None else {
            "growth_value": balance.growth, "points_available": balance.available, "points_pending": balance.pending,
            "points_expiring_30_days": balance.expiring, "computed_at": balance.computed_at.isoformat(),
        },
        "growth_value_entries": [_entry(e) for e in GrowthEntry.objects.filter(member=member).order_by("occurred_at", "id")],
        "points_entries": [_entry(e) for e in PointsEntry.objects.filter(member=member).order_by("occurred_at", "id")],
        "redemptions": [
            {"right": row["right__name"], "points": row["points"], "at": row["created_at"].isoformat()}
            for row in Redemption.objects.filter(member=member).order_by("created_at").values("right__name", "points", "created_at")
        ],
    }


def register() -> None:
    if "loyalty" not in {name for name, _build in privacy.SECTIONS}:
        privacy.SECTIONS.append(("loyalty", _loyalty))
