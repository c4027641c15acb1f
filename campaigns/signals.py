"""Receivers: they only schedule work once the transaction commits."""

from __future__ import annotations

from campaigns.models import Coupon
from campaigns.tasks import coupons_redeem_task


def order_saved(sender, instance, created: bool = False, **kwargs) -> None:
    if instance.coupon_code:
        coupons_redeem_task.delay_on_commit([instance.pk])


def import_committed(sender, kind: str, **kwargs) -> None:
    """Orders imported: match their coupon codes, if any coupon is still open."""
    if kind == "orders" and Coupon.objects.filter(redeemed_at__isnull=True).exists():
        coupons_redeem_task.delay_on_commit(None)
