"""Receivers: they only schedule work once the transaction commits."""

from __future__ import annotations

from campaigns.invites.tasks import invite_rewards_task
from campaigns.models import Coupon
from campaigns.tasks import coupons_redeem_task
from crm.models import EngagementKind
from crm.tasks import member_batches


def order_saved(sender, instance, created: bool = False, **kwargs) -> None:
    if instance.coupon_code:
        coupons_redeem_task.delay_on_commit([instance.pk])


def engagement_saved(sender, instance, created: bool = False, **kwargs) -> None:
    if instance.kind == EngagementKind.INVITE:
        invite_rewards_task.delay_on_commit([instance.member_id])


def import_committed(sender, kind: str, member_ids: list[int] | None = None, **kwargs) -> None:
    """Events imported: the invite rewards of their members.

    Orders imported (a file, an API batch): match the coupon codes of their members' orders, if any
    coupon is still open; in batches, as the recompute's. Never a sweep of every order per import:
    at 20M orders that took 80 s a batch, and the API's batches queued behind it."""
    if kind == "events" and member_ids:
        for part in member_batches(member_ids):
            invite_rewards_task.delay_on_commit(part)
    if kind != "orders" or not Coupon.objects.filter(redeemed_at__isnull=True).exists():
        return
    if member_ids is None:
        coupons_redeem_task.delay_on_commit(None)
        return
    for part in member_batches(member_ids):
        coupons_redeem_task.delay_on_commit(None, part)
