"""Points redeemed for a right: the ledger entry (loyalty) and, for a coupon
right, the member's coupon (campaigns) in one transaction, once per
idempotency key. A retried request with the same key gets the same
redemption and the same coupon."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns import sending
from campaigns.models import Coupon, CouponKind
from crm.feeds import feed_write
from crm.models import Member
from loyalty.models import Redemption, Right, RightKind
from loyalty.services import points_redeem


def coupon_issue(*, member: Member, value, threshold, days: int, now: dt.datetime) -> Coupon:
    """One coupon of value yuan off (spend-and-save when it has a threshold), valid from now for
    `days` days, given outside any campaign (a coupon right's, an invite reward's)."""
    valid_until = sending.coupon_valid_until(now, days)
    for attempt in range(3):
        try:
            with transaction.atomic():
                feed_write()  # the shop's webhooks read coupons by id (crm.feeds)
                return Coupon.objects.create(
                    code=sending._new_codes(1)[0], member=member, kind=CouponKind.SPEND_SAVE if threshold else CouponKind.AMOUNT,
                    value=value, threshold=threshold, valid_from=now, valid_until=valid_until,
                )
        except IntegrityError:  # a code drawn twice (1 in 32^9): draw again
            if attempt == 2:
                raise


def right_redeem(*, member: Member, right: Right, key: str, user=None, now: dt.datetime | None = None) -> tuple[Redemption, Coupon | None]:
    now = now or timezone.now()
    with transaction.atomic():
        redemption = points_redeem(member=member, right=right, key=key, user=user, now=now)
        if right.kind != RightKind.COUPON:
            return redemption, None
        if redemption.coupon_id:
            return redemption, Coupon.objects.filter(pk=redemption.coupon_id).first()
        coupon = coupon_issue(member=member, value=right.coupon_value, threshold=right.coupon_threshold, days=right.coupon_days, now=now)
        redemption.coupon_id = coupon.pk
        redemption.save(update_fields=["coupon_id"])
    return redemption, coupon
