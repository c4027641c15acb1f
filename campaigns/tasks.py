"""Celery tasks of the outbox core: thin wrappers around campaigns.sending and campaigns.services."""

from __future__ import annotations

from celery import shared_task

from campaigns import sending, services


@shared_task(acks_late=True, ignore_result=True)
def deliveries_send_task(delivery_ids: list[int]) -> dict:
    """One batch of outbox rows (hundreds, never one member per task). Its
    outcome is in the outbox rows; no task result is stored."""
    return dict(sending.send_batch(delivery_ids))


@shared_task
def send_due_task() -> int:
    """Every minute: launch one-off campaigns whose time has come, hand due and stuck rows to workers."""
    return services.campaigns_due()


@shared_task(acks_late=True)
def campaign_launch_task(campaign_id: int) -> int:
    """A repeating campaign's beat entry: reach the members new to its audience."""
    from campaigns.models import Campaign, CampaignStatus

    campaign = Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SCHEDULED).first()
    if campaign is None:
        return 0
    return services.campaign_launch(campaign=campaign)


@shared_task(acks_late=True)
def coupons_redeem_task(order_ids: list[int] | None = None, member_ids: list[int] | None = None) -> int:
    return services.coupons_redeem(order_ids=order_ids, member_ids=member_ids)


# The parts' beat tasks live in their rooms (names kept: beat rows hold them).
from campaigns.dashboard.tasks import kpi_snapshot_task  # noqa: E402,F401
from campaigns.invites.tasks import invite_rewards_task  # noqa: E402,F401
from campaigns.journeys.tasks import journeys_run_task  # noqa: E402,F401
from campaigns.worklist.tasks import worklist_build_task  # noqa: E402,F401
