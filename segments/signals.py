"""Receivers: they only schedule a recompute of the members concerned once
the transaction commits. No business logic here."""

from __future__ import annotations

from crm.models import deleted_with_member
from segments.models import ChangeReason
from segments.tasks import recompute_members_enqueue


def order_saved(sender, instance, **kwargs) -> None:
    recompute_members_enqueue(instance.members_concerned(), ChangeReason.ORDER)


def engagement_saved(sender, instance, origin=None, **kwargs) -> None:
    if not deleted_with_member(origin):  # saved, or deleted by itself
        recompute_members_enqueue([instance.member_id], ChangeReason.ORDER)


def import_committed(sender, kind: str, member_ids: list[int] | None = None, **kwargs) -> None:
    if member_ids:
        recompute_members_enqueue(member_ids, ChangeReason.IMPORT)
