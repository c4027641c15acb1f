"""The outbox at work: hand due rows to workers in batches, claim, re-check,
render, send, record. The database is the truth; a lost task or a killed
worker delays a message but never drops or doubles it.

Row states: queued → sending (claimed by a worker and handed to the gateway)
→ sent / failed / unknown, or skipped, or back to queued (quiet hours, a
transient error with backoff). A worker reads its batch, re-checks each row
and renders it, and only then claims the rows it sends, queued → sending in
one conditional UPDATE: a row written once before the gateway call and once
after it (each write of the outbox row rewrites its indexes). dispatch()
re-enqueues rows queued too long and turns rows stuck in `sending` into
`unknown`: the gateway may have taken them, so they wait for reconciliation,
not a resend."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections import Counter, defaultdict

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from campaigns import backends
from campaigns.audience import CAPPED_STATUSES, CONTACT_COLUMN
from campaigns.models import (
    Campaign,
    CampaignStatus,
    Coupon,
    Delivery,
    DeliveryStatus,
    MessageTemplate,
    SendingPolicy,
    SkipReason,
    Variant,
)
from campaigns.policy import Rules, cap_reached, in_quiet_hours, send_time
from campaigns.rendering import MEMBER_FIELDS, CouponView, contexts_for, message_text
from campaigns.templating import compile_template, render
from crm.bulkload import ids_in, sql_in, sql_values
from crm.celery import app as celery_app
from crm.feeds import feed_write
from crm.models import Consent, Member

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _enqueue(ids: list[int]) -> None:
    # By name, from the app's registry: campaigns.tasks imports this module,
    # never the reverse (CampaignsConfig.ready registers the tasks).
    celery_app.tasks["campaigns.tasks.deliveries_send_task"].delay(ids)


def dispatch(*, now: dt.datetime | None = None, enqueue=None) -> int:
    """Hand every due row to the workers, batch by batch; sweep stuck rows first."""
    now = now or timezone.now()
    enqueue = enqueue or _enqueue
    policy = SendingPolicy.current()
    stale = now - dt.timedelta(minutes=policy.stale_minutes)
    Delivery.objects.filter(status=DeliveryStatus.SENDING, sent_at__lt=stale).update(
        status=DeliveryStatus.UNKNOWN, error="the worker stopped while the gateway had the message: reconcile"
    )
    # One UPDATE … RETURNING marks every due row handed out and streams the ids
    # back (a keyset loop of SELECTs took 0.75 s a chunk on a million rows).
    handed, batch = 0, settings.CAMPAIGN_BATCH
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_delivery SET enqueued_at = %s WHERE status = %s AND due_at <= %s "
            "AND (enqueued_at IS NULL OR enqueued_at < %s) RETURNING id",
            [now, DeliveryStatus.QUEUED, now, stale],
        )
        while rows := cursor.fetchmany(batch):
            enqueue(sorted(row[0] for row in rows))
            handed += len(rows)
    return handed


def hand_out(ids: list[int], *, enqueue=None) -> int:
    """Give rows already marked handed out (by the launch) to the workers, a batch per task.

    In id order: a launch writes its rows in member order, so each batch is a
    run of neighbouring members whose rows the worker reads from neighbouring pages."""
    enqueue = enqueue or _enqueue
    batch = settings.CAMPAIGN_BATCH
    ids = sorted(ids)
    for start in range(0, len(ids), batch):
        enqueue(ids[start : start + batch])
    return len(ids)


# What a worker needs of each row of its batch.
PENDING_COLUMNS = ("id", "campaign_id", "member_id", "variant_id", "channel", "is_marketing", "attempts")


def pending(ids: list[int], now: dt.datetime) -> list[dict]:
    """The rows of a batch still queued and due, with the columns the send needs (read only: claim() takes them)."""
    if not ids:
        return []
    with connection.cursor() as cursor:
        id_sql, id_params = sql_in(cursor, ids)
        cursor.execute(
            f"SELECT {', '.join(PENDING_COLUMNS)} FROM campaigns_delivery WHERE id {id_sql} AND status = %s AND due_at <= %s",  # nosec B608
            [*id_params, DeliveryStatus.QUEUED, now],
        )
        return [dict(zip(PENDING_COLUMNS, row)) for row in cursor.fetchall()]


def _settle(ids: list[int], *, set_status: str, count_attempt: bool = False, **fields) -> list[int]:
    """Move the rows still queued among ids to set_status (one conditional UPDATE); returns the ids it moved.

    A row another worker claimed meanwhile, or one cancelled, is left alone:
    with status = queued in the WHERE, of two workers given the same row only
    the first to update it gets it back."""
    if not ids:
        return []
    assignments = ", ".join([*(f"{name} = %s" for name in ("status", *fields)), *(["attempts = attempts + 1"] if count_attempt else [])])
    with connection.cursor() as cursor:
        id_sql, id_params = sql_in(cursor, ids)
        cursor.execute(
            f"UPDATE campaigns_delivery SET {assignments} WHERE id {id_sql} AND status = %s RETURNING id",  # nosec B608
            [set_status, *fields.values(), *id_params, DeliveryStatus.QUEUED],
        )
        return [row[0] for row in cursor.fetchall()]


def claim(ids: list[int], now: dt.datetime) -> set[int]:
    """Claim rows for the gateway: queued → sending, the attempt counted; returns the ids this worker holds."""
    return set(_settle(ids, set_status=DeliveryStatus.SENDING, count_attempt=True, claimed_at=now, sent_at=now))


# Random bytes to code letters: 256 is a multiple of the alphabet's 32, so every letter is as likely.
_CODE_LETTERS = bytes(ord(CODE_ALPHABET[byte % len(CODE_ALPHABET)]) for byte in range(256))
CODE_LENGTH = 9


def _new_codes(count: int) -> list[str]:
    """Coupon codes: Q and nine letters drawn by the secrets module (one call per batch, not one per letter)."""
    letters = secrets.token_bytes(CODE_LENGTH * count).translate(_CODE_LETTERS).decode()
    return ["Q" + letters[start : start + CODE_LENGTH] for start in range(0, len(letters), CODE_LENGTH)]


def coupon_valid_until(now: dt.datetime, days: int) -> dt.datetime:
    """A coupon issued at now for `days` days is valid to the end of the days-th day after today (Beijing)."""
    return timezone.localtime(now).replace(hour=23, minute=59, second=59, microsecond=0) + dt.timedelta(days=days)


def _coupons_for(campaign: Campaign, deliveries: list[dict], now: dt.datetime) -> dict[int, CouponView]:
    """Each delivery's coupon, created once (a retried send finds and reuses it).

    One INSERT … RETURNING per batch. A delivery it did not return already had
    its coupon (a retried send) or drew a code that exists (1 in 32⁹ per pair),
    which is drawn again. A journey step that gives none speaks of the coupon
    that started its enrolment, if any (an invite reward's)."""
    if not deliveries:
        return {}
    if not campaign.coupon_kind:
        return _enrolment_coupons(deliveries) if campaign.status == CampaignStatus.JOURNEY else {}
    valid_until = coupon_valid_until(now, campaign.coupon_days)
    found: dict[int, tuple[str, dt.datetime]] = {}
    member_of = {d["id"]: d["member_id"] for d in deliveries}
    missing = list(member_of)
    with transaction.atomic(), connection.cursor() as cursor:
        feed_write()  # the shop's webhooks read coupons by id (crm.feeds)
        for attempt in range(3):
            rows = [(code, pk, member_of[pk]) for code, pk in zip(_new_codes(len(missing)), missing)]
            values, value_params = sql_values(cursor, rows, ("varchar", "bigint", "bigint"))
            cursor.execute(
                f"INSERT INTO campaigns_coupon (code, delivery_id, member_id, campaign_id, kind, value, threshold, percent, "  # nosec B608
                f"category_id, valid_from, valid_until) "
                f"SELECT v.column1, v.column2, v.column3, %s, %s, %s, %s, %s, %s, %s, %s FROM {values} AS v WHERE true "
                f"ON CONFLICT DO NOTHING RETURNING delivery_id, code",
                [
                    campaign.pk, campaign.coupon_kind, campaign.coupon_value, campaign.coupon_threshold, campaign.coupon_percent,
                    campaign.coupon_category_id, now, valid_until, *value_params,
                ],
            )
            found.update((delivery_id, (code, valid_until)) for delivery_id, code in cursor.fetchall())
            missing = [pk for pk in missing if pk not in found]
            if missing and attempt == 0:
                found.update(
                    (delivery_id, (code, until))
                    for delivery_id, code, until in Coupon.objects.filter(delivery_id__in=missing).values_list("delivery_id", "code", "valid_until")
                )
                missing = [pk for pk in missing if pk not in found]
            if not missing:
                break
    description = campaign.coupon_describe()
    return {delivery_id: CouponView(code, until, description) for delivery_id, (code, until) in found.items()}


def _enrolment_coupons(deliveries: list[dict]) -> dict[int, CouponView]:
    given = dict(
        Delivery.objects.filter(pk__in=[d["id"] for d in deliveries], enrolment__coupon__isnull=False).values_list("pk", "enrolment__coupon_id")
    )
    views = {pk: CouponView(c.code, c.valid_until, c.describe()) for pk, c in Coupon.objects.select_related("category").in_bulk(set(given.values())).items()}
    return {delivery_id: views[coupon_id] for delivery_id, coupon_id in given.items() if coupon_id in views}


def rate_wait(channel: str, count: int, per_second: int) -> None:
    """A shared per-channel budget per second (in the cache, so across all workers)."""
    if per_second <= 0:
        return
    while True:
        second = int(time.time())
        key = f"campaigns:rate:{channel}:{second}"
        cache.add(key, 0, timeout=5)
        try:
            used = cache.incr(key, count)
        except ValueError:
            continue
        if used <= per_second or used == count:
            return
        time.sleep(max(0.0, second + 1 - time.time()))


def send_batch(ids: list[int], *, now: dt.datetime | None = None) -> Counter:
    """Re-check, render, claim and send a batch; returns how many ended in each state."""
    now = now or timezone.now()
    outcome: Counter = Counter()
    rows = pending(ids, now)
    if not rows:
        return outcome
    policy = SendingPolicy.current()
    rules = Rules.of(policy)
    campaigns = {c.pk: c for c in Campaign.objects.filter(pk__in={r["campaign_id"] for r in rows}).select_related("coupon_category", "target_product")}
    member_ids = ids_in([r["member_id"] for r in rows])
    members = {
        m["id"]: m
        for m in Member.objects.filter(pk__in=member_ids).values(
            *MEMBER_FIELDS, "mobile", "wechat_unionid", "email", "external_id", "erased_at", "personalisation_opt_out",
            "metrics__usual_order_hour",
        )
    }
    consents = set(Consent.objects.filter(member_id__in=member_ids, granted=True).values_list("member_id", "channel"))
    recent = dict(
        Delivery.objects.filter(
            member_id__in=member_ids, is_marketing=True, status__in=CAPPED_STATUSES, sent_at__gte=now - dt.timedelta(days=rules.cap_days)
        )
        .values_list("member_id")
        .annotate(n=Count("id"))
    )
    quiet = in_quiet_hours(now, rules)
    skipped: dict[str, list[int]] = defaultdict(list)
    later: dict[dt.datetime, list[int]] = defaultdict(list)  # few distinct times: one per usual hour
    to_send: list[dict] = []
    for row in rows:
        member = members.get(row["member_id"])
        campaign = campaigns[row["campaign_id"]]
        marketing = row["is_marketing"]
        if campaign.status == CampaignStatus.CANCELLED:
            skipped[SkipReason.CANCELLED].append(row["id"])
        elif member is None or member["erased_at"] or not member[CONTACT_COLUMN[row["channel"]]]:
            skipped[SkipReason.NO_CONTACT].append(row["id"])
        elif marketing and member["personalisation_opt_out"]:
            skipped[SkipReason.OPTED_OUT].append(row["id"])
        elif marketing and (row["member_id"], row["channel"]) not in consents:
            skipped[SkipReason.NO_CONSENT].append(row["id"])
        elif marketing and cap_reached(recent.get(row["member_id"], 0), rules):
            skipped[SkipReason.CAP].append(row["id"])
        elif marketing and quiet:
            later[send_time(now, member["metrics__usual_order_hour"], rules)].append(row["id"])
        else:
            if marketing:
                recent[row["member_id"]] = recent.get(row["member_id"], 0) + 1
            to_send.append(row)
    for reason, pks in skipped.items():
        outcome[DeliveryStatus.SKIPPED] += len(_settle(pks, set_status=DeliveryStatus.SKIPPED, skip_reason=reason))
    for due, pks in later.items():
        outcome["waiting"] += len(_settle(pks, set_status=DeliveryStatus.QUEUED, due_at=due, enqueued_at=None))
    by_campaign: dict[int, list[dict]] = defaultdict(list)
    for row in to_send:
        by_campaign[row["campaign_id"]].append(row)
    for campaign_id, batch in by_campaign.items():
        outcome.update(_send_campaign_batch(campaigns[campaign_id], batch, members, policy, now))
    return outcome


def _send_campaign_batch(campaign: Campaign, rows: list[dict], members: dict, policy: SendingPolicy, now: dt.datetime) -> Counter:
    outcome: Counter = Counter()
    coupons = _coupons_for(campaign, rows, now)
    contexts = contexts_for(
        [r["member_id"] for r in rows],
        {r["member_id"]: coupons.get(r["id"]) for r in rows},
        now=now,
        members=[members[r["member_id"]] for r in rows],
        product=campaign.target_product.name if campaign.target_product_id else "",
    )
    variants = {v.pk: v for v in Variant.objects.filter(campaign=campaign).select_related("template")}
    compiled: dict[int, tuple] = {}
    messages = []
    for row in rows:
        variant = variants.get(row["variant_id"])
        if variant is None:
            continue
        if variant.pk not in compiled:
            template: MessageTemplate = variant.template
            compiled[variant.pk] = (compile_template(template.body), compile_template(template.subject) if template.subject else None)
        body, subject = compiled[variant.pk]
        context = contexts.get(row["member_id"], {})
        text = message_text(body, context, channel=row["channel"], purpose=campaign.purpose, unsubscribe_line=policy.sms_unsubscribe)
        messages.append(
            backends.OutboundMessage(
                delivery_id=row["id"],
                campaign_id=campaign.pk,
                member_id=row["member_id"],
                channel=row["channel"],
                to=members[row["member_id"]][CONTACT_COLUMN[row["channel"]]],
                text=text,
                subject=render(subject, context) if subject else "",
            )
        )
    if not messages:
        return outcome
    rate_wait(campaign.channel, len(messages), policy.rate_for(campaign.channel))
    # Only rows this worker claimed go to the gateway: a row another worker
    # took meanwhile (a batch handed out twice) or cancelled is not ours to send.
    mine = claim([m.delivery_id for m in messages], now)
    messages = [m for m in messages if m.delivery_id in mine]
    if not messages:
        return outcome
    results = backends.backend_for(campaign.channel).send_messages(messages)
    attempts = {r["id"]: r["attempts"] + 1 for r in rows}  # the claim counted this one
    # Failures are rare and each has its own error: one UPDATE each; the sent rows go in bulk.
    sent_ids: dict[str, list[int]] = defaultdict(list)
    for message, result in zip(messages, results):
        pk = message.delivery_id
        if result.status == backends.SENT:
            sent_ids[result.provider_id].append(pk)
            outcome[DeliveryStatus.SENT] += 1
        elif result.status == backends.UNKNOWN:
            Delivery.objects.filter(pk=pk).update(status=DeliveryStatus.UNKNOWN, error=result.error)
            outcome[DeliveryStatus.UNKNOWN] += 1
        elif result.status == backends.RETRY and attempts[pk] < policy.max_attempts:
            backoff = dt.timedelta(minutes=2 ** attempts[pk])
            Delivery.objects.filter(pk=pk).update(
                status=DeliveryStatus.QUEUED, due_at=now + backoff, enqueued_at=None, claimed_at=None, sent_at=None, error=result.error
            )
            outcome["retry"] += 1
        else:
            Delivery.objects.filter(pk=pk).update(status=DeliveryStatus.FAILED, sent_at=None, error=result.error)
            outcome[DeliveryStatus.FAILED] += 1
    _record_sent(sent_ids)
    return outcome


def _record_sent(sent: dict[str, list[int]]) -> None:
    """Mark the sent rows with their gateway ids: one UPDATE … FROM a joined table of (id, gateway id).

    (Django's bulk_update builds a CASE per row; on 500 rows it cost 0.4 s.)"""
    pairs = [(pk, provider_id[:100]) for provider_id, pks in sent.items() for pk in pks]
    for start in range(0, len(pairs), 1000):
        with connection.cursor() as cursor:
            values, params = sql_values(cursor, pairs[start : start + 1000], ("bigint", "varchar"))
            cursor.execute(
                f"UPDATE campaigns_delivery SET status = %s, provider_id = v.column2 "  # nosec B608 - placeholders only
                f"FROM {values} AS v WHERE campaigns_delivery.id = v.column1",
                [DeliveryStatus.SENT, *params],
            )
