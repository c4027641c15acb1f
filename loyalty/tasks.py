"""Celery tasks: thin wrappers around loyalty.services."""

from __future__ import annotations

from celery import shared_task

from crm.tasks import member_batches
from loyalty import services


@shared_task(acks_late=True)
def ledgers_settle_members_task(member_ids: list[int]) -> int:
    return services.ledgers_settle(member_ids=member_ids).entries


@shared_task(acks_late=True)
def ledgers_settle_nightly_task() -> int:
    return services.ledgers_settle_nightly().entries


@shared_task(acks_late=True)
def points_expire_task() -> int:
    return services.points_expire()


@shared_task(acks_late=True)
def pending_release_task() -> int:
    return services.pending_release()


def ledgers_settle_enqueue(member_ids: list[int]) -> None:
    """Settle these members' ledgers after the current transaction commits, in batches."""
    for part in member_batches(member_ids):
        ledgers_settle_members_task.delay_on_commit(part)
