"""The journeys' beat task."""

from __future__ import annotations

from celery import shared_task

from campaigns.journeys.services import journeys_run


@shared_task(name="campaigns.tasks.journeys_run_task")
def journeys_run_task() -> dict:
    """Every 10 minutes: exits, new enrolments and the due steps of every active journey."""
    return journeys_run()
