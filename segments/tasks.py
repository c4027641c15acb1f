"""Celery tasks: thin wrappers around segments.services."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task

from crm.tasks import member_batches
from segments import services
from segments.ladder import LadderError
from segments.models import ChangeReason, RecomputeRun

logger = logging.getLogger(__name__)


def _ladder_ready() -> bool:
    """An order or an import must not fail because the ladder is being set up: the members wait for the next run."""
    try:
        services.ladder_load()
    except LadderError as error:
        logger.warning("tiers not recomputed, the ladder is not usable: %s", error)
        return False
    return True


@shared_task(acks_late=True)
def recompute_members_task(member_ids: list[int], reason: str = ChangeReason.ORDER) -> int:
    if not _ladder_ready():
        return 0
    return services.tiers_recompute(member_ids=member_ids, reason=reason).tier_changes


@shared_task(acks_late=True)
def recompute_nightly_task(as_of: str | None = None) -> int:
    run = services.tiers_recompute_nightly(as_of=dt.date.fromisoformat(as_of) if as_of else None)
    return run.tier_changes


@shared_task(acks_late=True)
def recompute_all_task(run_id: int) -> int:
    run = RecomputeRun.objects.get(pk=run_id)
    return services.tiers_recompute(as_of=run.as_of, reason=run.reason, run=run, refit=True).tier_changes


def recompute_members_enqueue(member_ids: list[int], reason: str) -> None:
    """Schedule the recompute of these members after the current transaction commits, in batches."""
    for part in member_batches(member_ids):
        recompute_members_task.delay_on_commit(part, reason)


@shared_task(acks_late=True)
def recompute_full_task(as_of: str | None = None) -> int:
    """Everyone, with a churn refit when the last fit is a week old (the weekly beat entry)."""
    as_of_date = dt.date.fromisoformat(as_of) if as_of else None
    return services.tiers_recompute(as_of=as_of_date, reason=ChangeReason.NIGHTLY).tier_changes
