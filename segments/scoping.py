"""An operator sees the members of the tiers his role operates (Tier.operators),
registered with crm.scoping in SegmentsConfig.ready()."""

from __future__ import annotations

from django.db.models import Q

from segments.models import Tier


def operated_tier_ids(user) -> list[int]:
    """The tiers the user's roles operate, read once per user object (once per request)."""
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(user, "_operated_tier_ids", None)
    if cached is None:
        cached = list(Tier.objects.filter(operators__user=user).values_list("pk", flat=True).distinct())
        user._operated_tier_ids = cached
    return cached


def tier_scope(user, prefix: str) -> Q | None:
    tier_ids = operated_tier_ids(user)
    return Q(**{f"{prefix}metrics__tier_id__in": tier_ids}) if tier_ids else None
