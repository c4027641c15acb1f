"""The worklist's beat task."""

from __future__ import annotations

from celery import shared_task

from campaigns.worklist.services import worklist_build


@shared_task(name="campaigns.tasks.worklist_build_task")
def worklist_build_task() -> int:
    """07:30 each morning: every group leader's list of members to contact today."""
    return worklist_build()
