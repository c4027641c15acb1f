"""The dashboard's tasks: the nightly snapshot, and a history rebuild started from the admin."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from campaigns.dashboard.history import history_rebuild
from campaigns.dashboard.kpi import snapshot_build
from segments.history import RebuildError


@shared_task(name="campaigns.tasks.kpi_snapshot_task")
def kpi_snapshot_task() -> int:
    """04:30, after the nightly recompute: the dashboard's figures for today."""
    return len(snapshot_build())


@shared_task(acks_late=True)
def history_rebuild_task(start: str, end: str | None, step: str) -> dict | None:
    """The tier history and its snapshots from the orders (the import page's offer). A refused range ends the task, stated on the page."""
    try:
        return history_rebuild(start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end) if end else None, step=step)
    except RebuildError:
        return None
