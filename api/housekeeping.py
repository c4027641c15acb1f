"""What crm.housekeeping may prune of the shop's API: the answers kept for an Idempotency-Key
(a retry after that is taken in again, which the upsert by natural key makes harmless), and
webhook events delivered or given up on (a pending event stays until it is delivered), and the
hourly call counts once more than a year and a month old (a year's usage compares with the last)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import QuerySet

from api.models import ApiUsage, IdempotentAnswer, WebhookEvent, WebhookStatus
from crm.housekeeping import Pruner


def _answers(cutoff: dt.datetime) -> QuerySet:
    return IdempotentAnswer.objects.filter(created_at__lt=cutoff)


def _webhooks(cutoff: dt.datetime) -> QuerySet:
    return WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(status=WebhookStatus.PENDING)


def _usage(cutoff: dt.datetime) -> QuerySet:
    return ApiUsage.objects.filter(hour__lt=cutoff)


PRUNERS = (
    Pruner("answers kept for idempotency keys", lambda: settings.RETENTION_IDEMPOTENCY_DAYS, _answers),
    Pruner("webhook events delivered or given up", lambda: settings.RETENTION_WEBHOOK_DAYS, _webhooks),
    Pruner("hourly API call counts", lambda: settings.RETENTION_API_USAGE_DAYS, _usage),
)
