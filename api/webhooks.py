"""Tier changes and new coupons pushed to each client's webhook URL.

collect() turns what happened since each client's cursors into outbox rows
(WebhookEvent), set by set; deliver() posts the due rows, signed like the SMS
gateway's calls (X-Timestamp, X-Signature: HMAC-SHA256 of "timestamp.body"
with the client's signing secret), and retries with a growing backoff until
the client answers 2xx. Each event carries its id (X-Event-Id and "id" in
the body): a retry after a lost answer is the same event, for the shop to
deduplicate on."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from api.models import ApiClient, WebhookEvent, WebhookStatus
from campaigns.backends import sign
from campaigns.models import Coupon
from crm.feeds import feed_settled
from segments.models import ChangeReason, TierChange

COLLECT_BATCH = 5_000
DELIVER_BATCH = 50
LEASE = dt.timedelta(seconds=60)  # a claimed event is retried after this if its worker died


def _tier_changes(client: ApiClient) -> int:
    changes = list(
        # A rebuilt history (segments.history) is the past written again, not news for the shop.
        TierChange.objects.filter(id__gt=client.tier_change_cursor, member__erased_at__isnull=True).exclude(reason=ChangeReason.REBUILD)
        .order_by("id").values("id", "member__external_id", "from_tier__code", "to_tier__code", "at", "reason")[:COLLECT_BATCH]
    )
    if not changes:
        return 0
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            client=client, kind="member.tier_changed", created_at=change["at"],
            payload={"external_id": change["member__external_id"], "from": change["from_tier__code"], "to": change["to_tier__code"],
                     "reason": change["reason"], "at": timezone.localtime(change["at"]).isoformat()},
        )
        for change in changes
    )
    client.tier_change_cursor = changes[-1]["id"]
    return len(changes)


def _coupons(client: ApiClient) -> int:
    coupons = list(
        Coupon.objects.filter(id__gt=client.coupon_cursor, member__erased_at__isnull=True).select_related("member", "category").order_by("id")[:COLLECT_BATCH]
    )
    if not coupons:
        return 0
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            client=client, kind="coupon.issued",
            payload={"external_id": coupon.member.external_id, "code": coupon.code, "terms": coupon.describe(),
                     "valid_from": timezone.localtime(coupon.valid_from).isoformat(), "valid_until": timezone.localtime(coupon.valid_until).isoformat()},
        )
        for coupon in coupons
    )
    client.coupon_cursor = coupons[-1].pk
    return len(coupons)


def collect() -> int:
    """Outbox rows for everything new since each client's cursors; returns how many."""
    made = 0
    for client_id in ApiClient.objects.filter(revoked_at__isnull=True).exclude(webhook_url="").values_list("pk", flat=True):
        while True:
            with transaction.atomic():
                if not feed_settled():  # a writer has rows still to commit below the newest ids: next time
                    return made
                client = ApiClient.objects.select_for_update().get(pk=client_id)
                added = _tier_changes(client) + _coupons(client)
                client.save(update_fields=["tier_change_cursor", "coupon_cursor"])
            made += added
            if added < COLLECT_BATCH:
                break
    return made


def backoff(attempts: int) -> dt.timedelta:
    """10 s, 20 s, 40 s … at most an hour."""
    return dt.timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


def body_of(event: WebhookEvent) -> bytes:
    return json.dumps(
        {"id": str(event.event_id), "type": event.kind, "created_at": timezone.localtime(event.created_at).isoformat(), "data": event.payload},
        ensure_ascii=False, sort_keys=True,
    ).encode()


def _claim(now: dt.datetime) -> list[WebhookEvent]:
    with transaction.atomic():
        due = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookStatus.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "id")[:DELIVER_BATCH]
        )
        WebhookEvent.objects.filter(pk__in=[event.pk for event in due]).update(next_attempt_at=now + LEASE)
    return due


def _post(event: WebhookEvent, client: ApiClient) -> str:
    """'' when the client took it (2xx), else why not."""
    body = body_of(event)
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": sign(client.signing_secret, stamp, body), "X-Event-Id": str(event.event_id)}
    if previous := client.previous_secret():  # a rotation's overlap: a receiver still on the old secret checks this one
        headers["X-Signature-Previous"] = sign(previous, stamp, body)
    request = urllib.request.Request(  # noqa: S310 - the URL is one staff set for the client
        client.webhook_url, data=body, method="POST", headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.API_WEBHOOK_TIMEOUT) as response:  # nosec B310
            response.read(1024)
            return "" if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return str(getattr(error, "reason", error))[:300] or type(error).__name__


def deliver(*, now: dt.datetime | None = None, rounds: int = 20) -> int:
    """Post the due events (a few batches); returns how many the clients took."""
    delivered = 0
    clients: dict[int, ApiClient] = {}
    for _round in range(rounds):
        now_round = now or timezone.now()
        due = _claim(now_round)
        if not due:
            break
        for event in due:
            client = clients.get(event.client_id) or clients.setdefault(event.client_id, ApiClient.objects.get(pk=event.client_id))
            if client.revoked_at is not None or not client.webhook_url:
                WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookStatus.FAILED, last_error="client revoked or without URL")
                continue
            error = _post(event, client)
            attempts = event.attempts + 1
            if not error:
                WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookStatus.DELIVERED, attempts=attempts, delivered_at=timezone.now(), last_error="")
                delivered += 1
                continue
            gave_up = attempts >= settings.API_WEBHOOK_MAX_ATTEMPTS
            WebhookEvent.objects.filter(pk=event.pk).update(
                status=WebhookStatus.FAILED if gave_up else WebhookStatus.PENDING, attempts=attempts, last_error=error,
                next_attempt_at=timezone.now() + backoff(attempts),
            )
    return delivered


def retry(events) -> int:
    """Staff send events that gave up again (the admin's action)."""
    return events.exclude(status=WebhookStatus.DELIVERED).update(status=WebhookStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error="")
