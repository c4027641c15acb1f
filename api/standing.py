"""A member's standing as the shop shows it: tier, what the next tier needs,
rights, growth value, points, open coupons and the offers of his tier.
Composed from every app (api/ may).

It is read at every page load of the shop, a thousand times a second on two
cores: one plain SQL query reads the member with his metrics, balance and open
coupons (the ORM's query building took a third of a lookup's time, a second
round trip a sixth); the ladder, the rights and the offers (rows staff edit a few times a
month) are kept in each server process for STATIC_SECONDS."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from api.models import Offer
from campaigns.models import Coupon
from crm.models import Category
from crm.replica import read_connection
from loyalty.balances import shown
from loyalty.models import Right
from loyalty.services import rights_at
from segments.days import local_midnight
from segments.ladder import RFM, LadderError, Rung, gap_to_next, ladder_validate, recency_days, tier_for
from segments.models import Tier
from segments.services import rung_from_tier

STATIC_SECONDS = 30  # an edit of the ladder, a right or an offer reaches the shop within this


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


@dataclass(frozen=True)
class _Static:
    day: dt.date
    tiers: dict[int, Tier]
    catch_all: Tier | None
    ladder: list[Rung]
    rights: dict[int, tuple[list[dict], list[dict]]]  # tier id -> (his rights, what the next tier adds)
    offers: dict[int, list[dict]]


_static: list[tuple[float, _Static]] = []
_static_lock = threading.Lock()


def _load_static(today: dt.date) -> _Static:
    tiers = list(Tier.objects.all())
    try:
        ladder = ladder_validate(rung_from_tier(tier) for tier in tiers)
    except LadderError:
        ladder = []
    rights = {}
    for tier in tiers:
        found = rights_at(tier, tiers)
        rights[tier.pk] = ([_right(right) for right in found.mine], [_right(right) for right in found.next_adds])
    offers: dict[int, list[dict]] = {}
    for offer in Offer.objects.filter(active=True, starts_on__lte=today).filter(Q(ends_on__isnull=True) | Q(ends_on__gte=today)):
        offers.setdefault(offer.tier_id, []).append(
            {"title": offer.title, "image_url": offer.image_url, "products": list(offer.products), "valid_until": offer.ends_on.isoformat() if offer.ends_on else None}
        )
    return _Static(today, {tier.pk: tier for tier in tiers}, next((tier for tier in tiers if tier.is_catch_all), None), ladder, rights, offers)


def static_for(today: dt.date) -> _Static:
    with _static_lock:
        if _static and _static[0][0] > time.monotonic() and _static[0][1].day == today:
            return _static[0][1]
    loaded = _load_static(today)
    with _static_lock:
        _static[:] = [(time.monotonic() + STATIC_SECONDS, loaded)]
    return loaded


def static_forget() -> None:
    """The next read loads the ladder, rights and offers again (tests; an edit in this process)."""
    with _static_lock:
        _static.clear()


# The member, his metrics and balance, and his open coupons soonest ending first (a row each, or
# one row without a coupon). A balance whose pending points have become available since it was
# computed (loyalty.balances.pending_stale: between midnight and the 00:05 run) gives what is
# pending now from his ledger.
_STANDING = """
    SELECT m.id, m.external_id, mm.tier_id, mm.last_order_at, mm.orders_365, mm.spend_365,
           b.growth, b.points, b.pending, b.expiring, b.computed_at,
           CASE WHEN b.pending > 0 AND (b.pending_until <= %s OR (b.pending_until IS NULL AND b.computed_at < %s))
                THEN (SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) FROM loyalty_pointsentry e
                       WHERE e.member_id = m.id AND e.available_at > %s)
           END,
           c.code, c.kind, c.value, c.threshold, c.percent, c.category_id, cat.name, c.valid_from, c.valid_until
    FROM crm_member m
    LEFT JOIN segments_membermetrics mm ON mm.member_id = m.id
    LEFT JOIN loyalty_balance b ON b.member_id = m.id
    LEFT JOIN campaigns_coupon c ON c.member_id = m.id AND c.valid_until >= %s AND c.redeemed_at IS NULL
    LEFT JOIN crm_category cat ON cat.id = c.category_id
    WHERE m.external_id = %s AND m.erased_at IS NULL
    ORDER BY c.valid_until"""
MEMBER_COLUMNS = 12
COUPONS_SHOWN = 50


def _aware(value):
    """A time as the database handed it back: SQLite gives naive UTC, as text or a datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def _coupon(code, kind, value, threshold, percent, category_id, category_name, valid_from, valid_until) -> dict:
    coupon = Coupon(code=code, kind=kind, value=value, threshold=threshold, percent=percent,
                    valid_from=_aware(valid_from), valid_until=_aware(valid_until))
    if category_id is not None:
        coupon.category = Category(pk=category_id, name=category_name)
    return coupon_out(coupon)


@dataclass(frozen=True)
class MemberRead:
    row: tuple  # id, external id, tier id, last order, orders and spend in 365 days, growth, points, pending, expiring, computed at, pending now
    coupons: list[dict]


def member_read(external_id: str, *, now: dt.datetime | None = None) -> MemberRead | None:
    """What the standing needs of one member, or None (unknown or erased); from the replica inside
    stale_reads(), when there is one."""
    reading = read_connection()
    with reading.cursor() as cursor:
        now = now or timezone.now()
        moments = [now, local_midnight(timezone.localdate(now)), now, now]
        cursor.execute(_STANDING, [*map(reading.ops.adapt_datetimefield_value, moments), external_id])
        rows = cursor.fetchmany(COUPONS_SHOWN)
    if not rows:
        return None
    coupons = [_coupon(*row[MEMBER_COLUMNS:]) for row in rows if row[MEMBER_COLUMNS] is not None]
    return MemberRead(rows[0][:MEMBER_COLUMNS], coupons)


def standing_of(read: MemberRead, *, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now)
    _member_id, external_id, tier_id, last_order_at, orders_365, spend_365, growth, points, pending, expiring, computed_at, pending_now = read.row
    static = static_for(today)
    tier = static.tiers.get(tier_id) or static.catch_all
    spend_365 = Decimal(str(spend_365 or 0))
    next_tier = None
    if tier is not None and static.ladder and tier_id is not None:
        last_order_at = _aware(last_order_at)
        last = timezone.localtime(last_order_at).date() if last_order_at else None
        rfm = RFM(recency_days=recency_days(last, today), orders_365=orders_365 or 0, spend_365=spend_365)
        current = next((rung for rung in static.ladder if rung.id == tier.pk), None) or tier_for(rfm, static.ladder)
        gap = gap_to_next(rfm, current, static.ladder)
        if gap is not None:
            next_tier = {
                "code": gap.rung.code, "name": gap.rung.name, "spend_missing": f"{gap.spend:.2f}",
                "orders_missing": gap.orders, "needs_recent_order": gap.needs_recent_order,
            }
    mine, next_adds = static.rights.get(tier.pk, ([], [])) if tier else ([], [])
    points, pending, expiring = points or 0, pending or 0, expiring or 0
    if computed_at is not None:  # a stored balance, as the member is shown it now
        points, pending, expiring = shown(points, pending, expiring, _aware(computed_at), now, pending_now)
    return {
        "external_id": external_id,
        "tier": {"code": tier.code, "name": tier.name} if tier else None,
        "next_tier": next_tier,
        "spend_365": f"{spend_365:.2f}",
        "orders_365": orders_365 or 0,
        "rights": mine,
        "next_tier_rights": next_adds,
        "growth_value": growth or 0,
        "points": {"available": points - pending, "pending": pending, "expiring_30d": expiring},
        "coupons": read.coupons,
        "offers": static.offers.get(tier.pk, []) if tier else [],
    }

