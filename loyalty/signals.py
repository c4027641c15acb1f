"""Receivers: they only schedule a settle of the members concerned once the
transaction commits. No business logic here."""

from __future__ import annotations

from crm.models import deleted_with_member
from loyalty.tasks import ledgers_settle_enqueue


def member_saved(sender, instance, created: bool = False, **kwargs) -> None:
    if created:
        ledgers_settle_enqueue([instance.pk])


def order_saved(sender, instance, **kwargs) -> None:
    ledgers_settle_enqueue(instance.members_concerned())


def engagement_saved(sender, instance, origin=None, **kwargs) -> None:
    if not deleted_with_member(origin):  # saved, or deleted by itself
        ledgers_settle_enqueue([instance.member_id])


def import_committed(sender, kind: str, member_ids: list[int] | None = None, **kwargs) -> None:
    if member_ids:
        ledgers_settle_enqueue(member_ids)
