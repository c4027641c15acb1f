"""Celery tasks: thin wrappers around api.webhooks."""

from __future__ import annotations

from celery import shared_task

from api import webhooks


@shared_task(acks_late=True)
def webhooks_run() -> int:
    """Beat, every 10 seconds: new tier changes and coupons into the outbox, then the due events posted."""
    webhooks.collect()
    return webhooks.deliver()

