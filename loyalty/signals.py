"""Receivers: they only schedule a settle of the members concerned once the
transaction commits, or (recompute_tiers on the command line) settle them at
once. No business logic here."""

from __future__ import annotations

from crm.models import deleted_with_member
from loyalty import services
from loyalty.tasks import ledgers_settle_enqueue


def member_saved(sender, instance, **kwargs) -> None:
    # Created (his registration earns), or edited in the admin (a registration time filled in
    # moves its award to that day). Imports write members in bulk and send import_committed.
    ledgers_settle_enqueue([instance.pk])


def order_saved(sender, instance, **kwargs) -> None:
    ledgers_settle_enqueue(instance.members_concerned())


def engagement_saved(sender, instance, origin=None, **kwargs) -> None:
    if not deleted_with_member(origin):  # saved, or deleted by itself
        ledgers_settle_enqueue([instance.member_id])


def import_committed(sender, kind: str, member_ids: list[int] | None = None, **kwargs) -> None:
    if member_ids:
        ledgers_settle_enqueue(member_ids)


def recomputed_from_command(sender, member_ids: list[int] | None = None, **kwargs) -> str:
    run = services.ledgers_settle(member_ids=member_ids)
    return f"Growth value and points settled: {run.entries:,} entries written, {run.members:,} members' balances."
