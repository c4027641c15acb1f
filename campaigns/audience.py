"""Who a campaign reaches, and why each of the others is left out, in one SELECT.

The same statement serves the dry run (counted by status and reason) and the
launch (INSERT … SELECT … ON CONFLICT DO NOTHING into the outbox), so the
funnel staff see before launch is exactly what the launch writes.

SQL here is assembled from fixed fragments and column names of our own
models; every value is a query parameter (bandit B608 is marked below)."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign, Delivery, DeliveryStatus, SkipReason
from campaigns.policy import Rules, send_times_by_hour
from crm.models import Channel, Member
from segments.models import CircleMembership

CONTACT_COLUMN = {Channel.SMS: "mobile", Channel.WECOM: "wechat_unionid", Channel.EMAIL: "email", Channel.PUSH: "external_id"}
# A fixed pseudo-random split by member and campaign: the same member always
# falls in the same bucket of a campaign, so a re-run never moves him. The
# control group and the variant split use different multipliers, so that the
# two draws are independent of each other.
BUCKET = "((m.id * {multiplier} + {salt}) %% 4294967291) %% 10000"
CONTROL_MULTIPLIER, VARIANT_MULTIPLIER = 2654435761, 2246822519
# Marketing messages that count against the frequency cap.
CAPPED_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)


def audience(campaign: Campaign) -> QuerySet[Member]:
    """Members in the target tiers (and, when circles are chosen too, in one of
    those circles), minus exclusions; erased members never."""
    members = Member.objects.filter(erased_at__isnull=True)
    tiers = list(campaign.target_tiers.values_list("pk", flat=True))
    circles = list(campaign.target_circles.values_list("pk", flat=True))
    if not tiers and not circles:
        return members.none()
    if tiers:
        members = members.filter(metrics__tier_id__in=tiers)
    if circles:
        members = members.filter(pk__in=CircleMembership.objects.filter(circle_id__in=circles).values("member_id"))
    exclude_tiers = list(campaign.exclude_tiers.values_list("pk", flat=True))
    exclude_circles = list(campaign.exclude_circles.values_list("pk", flat=True))
    if exclude_tiers:
        members = members.exclude(Q(metrics__tier_id__in=exclude_tiers))
    if exclude_circles:
        members = members.exclude(pk__in=CircleMembership.objects.filter(circle_id__in=exclude_circles).values("member_id"))
    return members


def _variant_case(campaign: Campaign) -> tuple[str, list]:
    """Split the members who are sent between the variants by their shares."""
    variants = list(campaign.variants.order_by("label").values_list("pk", "share"))
    if not variants:
        return "NULL", []
    bucket, salt = BUCKET.format(multiplier=VARIANT_MULTIPLIER, salt="%s"), campaign.pk * 7919 + 1
    total = sum(share for _pk, share in variants) or 1
    parts, params, upto = [], [], 0
    for pk, share in variants[:-1]:
        upto += share * 10000 // total
        parts.append(f"WHEN {bucket} < %s THEN %s")
        params += [salt, upto, pk]
    if not parts:
        return "%s", [variants[0][0]]
    return f"CASE {' '.join(parts)} ELSE %s END", [*params, variants[-1][0]]


def select_sql(campaign: Campaign, *, now: dt.datetime, rules: Rules) -> tuple[str, list]:
    """One row per member of the audience not yet in this campaign's outbox:
    the columns of a Delivery, with status and reason already decided."""
    audience_sql, audience_params = audience(campaign).values("id").query.sql_with_params()
    marketing = campaign.is_marketing
    channel = campaign.channel
    contact = CONTACT_COLUMN[channel]
    control_bucket = BUCKET.format(multiplier=CONTROL_MULTIPLIER, salt="%s")
    variant_case, variant_params = _variant_case(campaign)
    reasons: list[tuple[str, list]] = []
    if marketing:
        reasons.append(("m.personalisation_opt_out", []))
    reasons.append((f"COALESCE(m.{contact}, '') = ''", []))
    if marketing:
        reasons.append(("(c.granted IS NULL OR NOT c.granted)", []))
        reasons.append(("COALESCE(capped.n, 0) >= %s", [rules.cap_messages]))
    reason_codes = ([SkipReason.OPTED_OUT] if marketing else []) + [SkipReason.NO_CONTACT] + (
        [SkipReason.NO_CONSENT, SkipReason.CAP] if marketing else []
    )
    reason_sql = " ".join(f"WHEN {cond} THEN %s" for cond, _p in reasons)
    reason_params = [p for (cond, params), code in zip(reasons, reason_codes) for p in (*params, code)]
    control = f"{control_bucket} < %s"
    control_params = [campaign.pk, campaign.control_share * 100]
    status_sql = f"CASE {reason_sql} WHEN {control} THEN %s ELSE %s END"
    status_params = [
        p for (cond, params), _code in zip(reasons, reason_codes) for p in (*params, DeliveryStatus.SKIPPED)
    ] + [*control_params, DeliveryStatus.CONTROL, DeliveryStatus.QUEUED]
    skip_sql = f"CASE {reason_sql} ELSE '' END"
    hours = send_times_by_hour(now, rules) if marketing else {None: now}
    due_sql = "CASE " + " ".join("WHEN mm.usual_order_hour = %s THEN %s" for hour in hours if hour is not None) + " ELSE %s END"
    due_params = [p for hour, moment in hours.items() if hour is not None for p in (hour, moment)] + [hours[None]]
    if len(hours) == 1:
        due_sql, due_params = "%s", [hours[None]]
    sql = f"""
        SELECT %s AS campaign_id, m.id AS member_id,
               {variant_case} AS variant_id,
               %s AS channel, %s AS is_marketing, {status_sql} AS status, {skip_sql} AS skip_reason,
               %s AS created_at, {due_sql} AS due_at, 0 AS attempts, '' AS provider_id, '' AS error
          FROM crm_member m
          LEFT JOIN crm_consent c ON c.member_id = m.id AND c.channel = %s
          LEFT JOIN segments_membermetrics mm ON mm.member_id = m.id
          LEFT JOIN (
                SELECT member_id, COUNT(*) AS n FROM campaigns_delivery
                 WHERE is_marketing AND status IN (%s, %s, %s) AND sent_at >= %s
                 GROUP BY member_id
          ) capped ON capped.member_id = m.id
         WHERE m.id IN ({audience_sql})
           AND NOT EXISTS (SELECT 1 FROM campaigns_delivery d WHERE d.campaign_id = %s AND d.member_id = m.id)
    """  # nosec B608
    params = [
        campaign.pk,
        *variant_params,
        channel,
        marketing,
        *status_params,
        *reason_params,
        now,
        *due_params,
        channel,
        *CAPPED_STATUSES,
        now - dt.timedelta(days=rules.cap_days),
        *audience_params,
        campaign.pk,
    ]
    return sql, params


COLUMNS = "campaign_id, member_id, variant_id, channel, is_marketing, status, skip_reason, created_at, due_at, attempts, provider_id, error"


def funnel(campaign: Campaign, *, now: dt.datetime | None = None, policy=None) -> dict:
    """The dry run: how many members each step leaves, without writing anything."""
    from campaigns.models import SendingPolicy

    now = now or timezone.now()
    policy = policy or SendingPolicy.current()
    sql, params = select_sql(campaign, now=now, rules=Rules.of(policy))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status, skip_reason, variant_id, COUNT(*) FROM ({sql}) AS s GROUP BY status, skip_reason, variant_id", params)  # nosec B608
        rows = cursor.fetchall()
    return funnel_from_rows(campaign, rows, already=Delivery.objects.filter(campaign=campaign).count())


def funnel_from_rows(campaign: Campaign, rows, *, already: int = 0) -> dict:
    by_reason = {code: 0 for code in SkipReason.values if code != SkipReason.CANCELLED}
    variants = {pk: 0 for pk in campaign.variants.values_list("pk", flat=True)}
    total = control = to_send = 0
    for status, reason, variant_id, count in rows:
        total += count
        if status == DeliveryStatus.SKIPPED:
            by_reason[reason] = by_reason.get(reason, 0) + count
        elif status == DeliveryStatus.CONTROL:
            control += count
        else:
            to_send += count
            variants[variant_id] = variants.get(variant_id, 0) + count
    steps, left = [], total
    for code in by_reason:
        left -= by_reason[code]
        steps.append({"reason": code, "label": SkipReason(code).label, "removed": by_reason[code], "left": left})
    return {
        "audience": total,
        "already_reached": already,
        "steps": steps,
        "control": control,
        "to_send": to_send,
        "variants": variants,
    }


def deliveries_create(campaign: Campaign, *, now: dt.datetime, policy) -> int:
    """Write this launch's outbox rows; a member already in the outbox is left alone."""
    sql, params = select_sql(campaign, now=now, rules=Rules.of(policy))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO campaigns_delivery ({COLUMNS}) {sql} ON CONFLICT (campaign_id, member_id) DO NOTHING",  # nosec B608
            params,
        )
        return cursor.rowcount
