"""A member's standing as the shop shows it: tier, what the next tier needs,
rights, growth value, points, open coupons and the offers of his tier.
Composed from every app (api/ may); eight indexed queries, no aggregate."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from api.models import Offer
from campaigns.models import Coupon
from crm.models import Member
from loyalty.models import Right
from loyalty.services import balance_of, rights_at
from segments.ladder import RFM, LadderError, gap_to_next, ladder_validate, recency_days, tier_for
from segments.models import MemberMetrics, Tier
from segments.services import rung_from_tier


def _right(right: Right) -> dict:
    return {
        "id": right.pk, "name": right.name, "kind": right.kind, "description": right.description,
        "points_cost": right.points_cost, "tier": right.tier.code,
    }


def coupon_out(coupon: Coupon) -> dict:
    return {
        "code": coupon.code, "terms": coupon.describe(),
        "valid_from": timezone.localtime(coupon.valid_from).isoformat(), "valid_until": timezone.localtime(coupon.valid_until).isoformat(),
    }


def standing_of(member: Member, *, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now)
    metrics = MemberMetrics.objects.filter(member=member).select_related("tier").first()
    tiers = list(Tier.objects.all())
    rights = rights_at(metrics.tier if metrics else None, tiers)
    tier = rights.tier
    next_tier = None
    if metrics is not None and tier is not None:
        try:
            ladder = ladder_validate(rung_from_tier(each) for each in tiers)
        except LadderError:
            ladder = []
        last = timezone.localtime(metrics.last_order_at).date() if metrics.last_order_at else None
        rfm = RFM(recency_days=recency_days(last, today), orders_365=metrics.orders_365, spend_365=metrics.spend_365)
        current = next((rung for rung in ladder if rung.id == tier.pk), None) or (tier_for(rfm, ladder) if ladder else None)
        gap = gap_to_next(rfm, current, ladder) if current else None
        if gap is not None:
            next_tier = {
                "code": gap.rung.code, "name": gap.rung.name, "spend_missing": f"{gap.spend:.2f}",
                "orders_missing": gap.orders, "needs_recent_order": gap.needs_recent_order,
            }
    balance = balance_of(member)
    coupons = Coupon.objects.filter(member=member, valid_until__gte=now, redeemed_at__isnull=True).select_related("category").order_by("valid_until")
    offers = (
        Offer.objects.filter(tier=tier, active=True, starts_on__lte=today).filter(Q(ends_on__isnull=True) | Q(ends_on__gte=today))
        if tier is not None else Offer.objects.none()
    )
    return {
        "external_id": member.external_id,
        "tier": {"code": tier.code, "name": tier.name} if tier else None,
        "next_tier": next_tier,
        "spend_365": f"{metrics.spend_365:.2f}" if metrics else "0.00",
        "orders_365": metrics.orders_365 if metrics else 0,
        "rights": [_right(right) for right in rights.mine],
        "next_tier_rights": [_right(right) for right in rights.next_adds],
        "growth_value": balance.growth,
        "points": {"available": balance.available, "pending": balance.pending, "expiring_30d": balance.expiring},
        "coupons": [coupon_out(coupon) for coupon in coupons[:50]],
        "offers": [
            {"title": offer.title, "image_url": offer.image_url, "products": list(offer.products), "valid_until": offer.ends_on.isoformat() if offer.ends_on else None}
            for offer in offers
        ],
    }
