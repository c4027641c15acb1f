"""Receivers: they only schedule a recompute of the members concerned once
the transaction commits. No business logic here. And the signal recompute_tiers
sends when it is done."""

from __future__ import annotations

from django.dispatch import Signal

from crm.models import deleted_with_member
from segments.models import ChangeReason
from segments.tasks import recompute_members_enqueue

# Sent by the recompute_tiers command after its recompute, with member_ids (None: everyone).
# The apps above segments bring their own figures of those members up to date in the
# foreground (loyalty: growth value and points, which export_member_metrics reads), where
# no worker may run the settles an import queued, and return a line for the command to print.
recomputed_from_command = Signal()


def member_saved(sender, instance, created: bool = False, **kwargs) -> None:
    # Edited in the admin: circles over his own fields (community, household, age band, registration
    # time) take him in or let him go now, not at the weekly full run. Imports write members in bulk
    # and send import_committed. A member just added has no order yet: his first order's recompute
    # places him (and an order that follows at once is the reason his tier history gives, not this).
    if not created:
        recompute_members_enqueue([instance.pk], ChangeReason.MANUAL)


def order_saved(sender, instance, **kwargs) -> None:
    recompute_members_enqueue(instance.members_concerned(), ChangeReason.ORDER)


def engagement_saved(sender, instance, origin=None, **kwargs) -> None:
    if not deleted_with_member(origin):  # saved, or deleted by itself
        recompute_members_enqueue([instance.member_id], ChangeReason.ORDER)


def import_committed(sender, kind: str, member_ids: list[int] | None = None, **kwargs) -> None:
    if member_ids:
        recompute_members_enqueue(member_ids, ChangeReason.IMPORT)
