"""A coupon at the shop's checkout: is it good for this member and basket, and
redeem it once. The reasons are codes the shop can act on, with a message.

Redeeming is one conditional UPDATE (still unredeemed), so of two checkouts
racing for one code exactly one wins; the same order number again is a
retry and gets the same yes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Coupon, CouponKind
from crm.models import Member, Product

CENT = Decimal("0.01")


@dataclass(frozen=True)
class BasketLine:
    sku: str
    quantity: int
    unit_price: Decimal
    category: str | None = None  # None: the product's category in the CRM


@dataclass(frozen=True)
class Verdict:
    coupon: Coupon | None
    reason: str | None  # None: valid
    message: str
    discount: Decimal

    @property
    def valid(self) -> bool:
        return self.reason is None


def _categories(lines: list[BasketLine]) -> list[str | None]:
    unknown = [line.sku for line in lines if line.category is None]
    known = dict(Product.objects.filter(sku__in=unknown).values_list("sku", "category__name")) if unknown else {}
    return [line.category if line.category is not None else known.get(line.sku) for line in lines]


def discount_for(coupon: Coupon, lines: list[BasketLine], categories: list[str | None]) -> tuple[str | None, Decimal]:
    """Pure: (reason it does not apply or None, yuan off)."""
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0"))
    if coupon.kind == CouponKind.CATEGORY:
        name = coupon.category.name if coupon.category_id else None
        eligible = sum((line.unit_price * line.quantity for line, category in zip(lines, categories) if category == name), Decimal("0"))
        if not eligible:
            return "wrong_category", Decimal("0")
        if coupon.threshold and eligible < coupon.threshold:
            return "below_minimum", Decimal("0")
        return None, min(coupon.value or Decimal("0"), eligible)
    if coupon.threshold and total < coupon.threshold:
        return "below_minimum", Decimal("0")
    if coupon.kind == CouponKind.PERCENT:
        return None, (total * Decimal(coupon.percent or 0) / 100).quantize(CENT, ROUND_HALF_UP)
    return None, min(coupon.value or Decimal("0"), total)


def _messages() -> dict[str, str]:
    return {
        "not_found": _("No coupon has this code."),
        "other_member": _("This coupon belongs to another member."),
        "used": _("This coupon was already used."),
        "not_yet_valid": _("This coupon is not valid yet."),
        "expired": _("This coupon has expired."),
        "below_minimum": _("The basket does not reach the coupon's minimum spend."),
        "wrong_category": _("The basket holds nothing of the coupon's category."),
    }


def coupon_check(*, code: str, member: Member, lines: list[BasketLine] | None, now: dt.datetime | None = None, order_no: str = "") -> Verdict:
    """Whether the coupon is good for this member (and basket, when lines are given) now.
    A coupon redeemed on order_no counts as good for that order (a retried redeem)."""
    now = now or timezone.now()
    coupon = Coupon.objects.select_related("category").filter(code=code.strip().upper()).first()
    reason = _reason(coupon, member, now, order_no)
    discount = Decimal("0")
    if reason is None and lines:
        reason, discount = discount_for(coupon, lines, _categories(lines))
    message = _messages()[reason] if reason else _("The coupon applies.")
    return Verdict(coupon, reason, message, discount.quantize(CENT) if reason is None else Decimal("0.00"))


def _reason(coupon: Coupon | None, member: Member, now: dt.datetime, order_no: str) -> str | None:
    if coupon is None:
        return "not_found"
    if coupon.member_id != member.pk:
        return "other_member"
    if coupon.redeemed_at is not None and not (order_no and coupon.redeemed_order_no == order_no):
        return "used"
    if coupon.valid_from > now:
        return "not_yet_valid"
    if coupon.valid_until < now:
        return "expired"
    return None


def coupon_redeem(*, code: str, member: Member, order_no: str, lines: list[BasketLine] | None = None, now: dt.datetime | None = None) -> Verdict:
    """Redeem once for order_no. Of concurrent redeems of one code exactly one succeeds;
    the same order number again gets the same yes."""
    now = now or timezone.now()
    verdict = coupon_check(code=code, member=member, lines=lines, now=now, order_no=order_no)
    if not verdict.valid or verdict.coupon.redeemed_at is not None:
        return verdict
    with transaction.atomic():
        won = Coupon.objects.filter(pk=verdict.coupon.pk, redeemed_at__isnull=True).update(redeemed_at=now, redeemed_order_no=order_no)
    if won:
        verdict.coupon.redeemed_at, verdict.coupon.redeemed_order_no = now, order_no
        return verdict
    # Another checkout redeemed it between the check and the update.
    return coupon_check(code=code, member=member, lines=None, now=now, order_no=order_no)
