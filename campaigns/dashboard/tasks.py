"""The dashboard's beat task."""

from __future__ import annotations

from celery import shared_task

from campaigns.dashboard.kpi import snapshot_build


@shared_task(name="campaigns.tasks.kpi_snapshot_task")
def kpi_snapshot_task() -> int:
    """04:30, after the nightly recompute: the dashboard's figures for today."""
    return len(snapshot_build())
