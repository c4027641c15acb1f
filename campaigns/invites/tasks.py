"""The invite rewards' tasks: after invites come in, and a nightly net under a lost one."""

from __future__ import annotations

from celery import shared_task

from campaigns.invites.services import invite_rewards_grant


@shared_task(name="campaigns.tasks.invite_rewards_task", acks_late=True)
def invite_rewards_task(member_ids: list[int] | None = None) -> int:
    return invite_rewards_grant(member_ids)
