"""Who a campaign reaches, and why each of the others is left out, in one SELECT.

The same statement serves the dry run (counted by status and reason) and the
launch (INSERT … SELECT … ON CONFLICT DO NOTHING into the outbox), so the
funnel staff see before launch is exactly what the launch writes.

SQL here is assembled from fixed fragments and column names of our own
models; every value is a query parameter (bandit B608 is marked below)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign, Delivery, DeliveryStatus, SkipReason
from campaigns.policy import Rules, send_times_by_hour
from campaigns.split import CAMPAIGN_CONTROL, CAMPAIGN_VARIANT, bucket_sql
from crm.models import Channel, Member, OrderLine, OrderStatus
from segments.days import local_midnight
from segments.models import CircleMembership

CONTACT_COLUMN = {Channel.SMS: "mobile", Channel.WECOM: "wechat_unionid", Channel.EMAIL: "email", Channel.PUSH: "external_id"}
# Marketing messages that count against the frequency cap.
CAPPED_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)


def audience(campaign: Campaign, *, now: dt.datetime | None = None) -> QuerySet[Member]:
    """Members in the target tiers (and, when circles are chosen too, in one of
    those circles; when a product is chosen, who bought it within its days),
    minus exclusions; erased members never."""
    members = Member.objects.filter(erased_at__isnull=True)
    tiers = list(campaign.target_tiers.values_list("pk", flat=True))
    circles = list(campaign.target_circles.values_list("pk", flat=True))
    if not tiers and not circles and not campaign.target_product_id:
        return members.none()
    if campaign.target_product_id:
        # The window of DOMAIN.md: today and the days before it, N calendar days in all.
        since = local_midnight(timezone.localdate(now or timezone.now()) - dt.timedelta(days=campaign.target_product_days - 1))
        buyers = OrderLine.objects.filter(
            product_id=campaign.target_product_id, order__status=OrderStatus.PAID, order__ordered_at__gte=since
        ).values("order__member_id")
        members = members.filter(pk__in=buyers)
    if tiers:
        members = members.filter(metrics__tier_id__in=tiers)
    if circles:
        members = members.filter(pk__in=CircleMembership.objects.filter(circle_id__in=circles).values("member_id"))
    exclude_tiers = list(campaign.exclude_tiers.values_list("pk", flat=True))
    exclude_circles = list(campaign.exclude_circles.values_list("pk", flat=True))
    if exclude_tiers:
        members = members.exclude(Q(metrics__tier_id__in=exclude_tiers))
    if exclude_circles:
        # NOT EXISTS, not NOT IN: a NOT IN list of a big circle's members (沉睡 holds 300k of a
        # million) stops being hashed once it outgrows work_mem and is rescanned for every member.
        members = members.exclude(Exists(CircleMembership.objects.filter(member_id=OuterRef("pk"), circle_id__in=exclude_circles)))
    return members


def _variant_case(campaign: Campaign) -> tuple[str, list]:
    """Split the members who are sent between the variants by their shares
    (campaigns.split: a draw of its own, independent of the control group's)."""
    variants = list(campaign.variants.order_by("label").values_list("pk", "share"))
    if not variants:
        return "CAST(NULL AS BIGINT)", []
    bucket, bucket_params = bucket_sql(CAMPAIGN_VARIANT, campaign.pk)
    total = sum(share for _pk, share in variants) or 1
    parts, params, upto = [], [], 0
    for pk, share in variants[:-1]:
        upto += share * 10000 // total
        parts.append(f"WHEN {bucket} < %s THEN %s")
        params += [*bucket_params, upto, pk]
    if not parts:
        return "%s", [variants[0][0]]
    return f"CASE {' '.join(parts)} ELSE %s END", [*params, variants[-1][0]]


@dataclass
class Source:
    """Where select_sql's members come from: FROM (aliasing crm_member as m) and
    WHERE fragments, the control-group condition and the enrolment column.

    with_sql: common table expressions the WHERE reads (the rows already in the
    outbox). The outbox is the table the INSERT writes: read through a
    subquery, a planner that took it for small (a first launch, an empty
    outbox) rescanned it for every member while it grew, and a million-member
    launch ran for over ten minutes. A MATERIALIZED CTE is read once."""

    from_sql: str
    where_sql: str
    where_params: list = field(default_factory=list)
    with_sql: str = ""
    with_params: list = field(default_factory=list)
    control_sql: str = "false"
    control_params: list = field(default_factory=list)
    enrolment_sql: str = "CAST(NULL AS BIGINT)"  # typed: the launch reads the SELECT as a subquery


def campaign_source(campaign: Campaign, now: dt.datetime) -> Source:
    """A campaign: its audience, minus members already in its outbox, with a
    control group drawn for this campaign (campaigns.split)."""
    audience_sql, audience_params = audience(campaign, now=now).values("id").query.sql_with_params()
    control_sql, control_params = bucket_sql(CAMPAIGN_CONTROL, campaign.pk)
    return Source(
        from_sql="crm_member m",
        with_sql="reached AS MATERIALIZED (SELECT member_id FROM campaigns_delivery WHERE campaign_id = %s AND enrolment_id IS NULL)",
        with_params=[campaign.pk],
        where_sql=f"m.id IN ({audience_sql}) "  # nosec B608 - the ORM's own SQL
        f"AND NOT EXISTS (SELECT 1 FROM reached r WHERE r.member_id = m.id)",
        where_params=[*audience_params],
        control_sql=f"{control_sql} < %s",
        control_params=[*control_params, campaign.control_share * 100],
    )


def select_sql(campaign: Campaign, *, now: dt.datetime, rules: Rules, source: Source | None = None) -> tuple[str, list]:
    """One row per member of the source (by default the campaign's audience not
    yet in its outbox): the columns of a Delivery, with status and reason already decided."""
    source = source or campaign_source(campaign, now)
    marketing = campaign.is_marketing
    channel = campaign.channel
    contact = CONTACT_COLUMN[channel]
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
    status_sql = f"CASE {reason_sql} WHEN {source.control_sql} THEN %s ELSE %s END"
    status_params = [
        p for (cond, params), _code in zip(reasons, reason_codes) for p in (*params, DeliveryStatus.SKIPPED)
    ] + [*source.control_params, DeliveryStatus.CONTROL, DeliveryStatus.QUEUED]
    skip_sql = f"CASE {reason_sql} ELSE '' END"
    hours = send_times_by_hour(now, rules) if marketing else {None: now}
    due_sql = "CASE " + " ".join("WHEN mm.usual_order_hour = %s THEN %s" for hour in hours if hour is not None) + " ELSE %s END"
    due_params = [p for hour, moment in hours.items() if hour is not None for p in (hour, moment)] + [hours[None]]
    if len(hours) == 1:
        due_sql, due_params = "%s", [hours[None]]
    with_sql = ", ".join(
        part for part in (
            "capped AS MATERIALIZED (SELECT member_id, COUNT(*) AS n FROM campaigns_delivery "
            "WHERE is_marketing AND status IN (%s, %s, %s) AND sent_at >= %s GROUP BY member_id)",
            source.with_sql,
        ) if part
    )
    sql = f"""
        WITH {with_sql}
        SELECT %s AS campaign_id, m.id AS member_id,
               {variant_case} AS variant_id, {source.enrolment_sql} AS enrolment_id,
               %s AS channel, %s AS is_marketing, {status_sql} AS status, {skip_sql} AS skip_reason,
               %s AS created_at, {due_sql} AS due_at, 0 AS attempts, '' AS provider_id, '' AS error
          FROM {source.from_sql}
          LEFT JOIN crm_consent c ON c.member_id = m.id AND c.channel = %s
          LEFT JOIN segments_membermetrics mm ON mm.member_id = m.id
          LEFT JOIN capped ON capped.member_id = m.id
         WHERE {source.where_sql}
    """  # nosec B608
    params = [
        *CAPPED_STATUSES,
        now - dt.timedelta(days=rules.cap_days),
        *source.with_params,
        campaign.pk,
        *variant_params,
        channel,
        marketing,
        *status_params,
        *reason_params,
        now,
        *due_params,
        channel,
        *source.where_params,
    ]
    return sql, params


COLUMNS = "campaign_id, member_id, variant_id, enrolment_id, channel, is_marketing, status, skip_reason, created_at, due_at, attempts, provider_id, error"


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
    by_reason = {code: 0 for code in SkipReason.values if code not in (SkipReason.CANCELLED, SkipReason.EXITED)}
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


def deliveries_create(campaign: Campaign, *, now: dt.datetime, policy, handed: list[int] | None = None) -> int:
    """Write this launch's outbox rows; a member already in the outbox is left alone.

    handed: when given, the rows due at once are marked handed out (enqueued_at)
    by the INSERT itself and their ids added to it, for the caller to give to the
    workers after commit. dispatch() would mark them with a second pass over
    every row (25 s of a million-member launch); if the caller dies first, the
    sweep hands them out once they are stale.

    The rows go in in member order: the outbox's (campaign, member) and
    (member, sent) indexes then grow at their ends instead of at a random
    page per row (a million-member INSERT took 15 s instead of 28), and the
    ids follow the members (hand_out gives them out in that order)."""
    sql, params = select_sql(campaign, now=now, rules=Rules.of(policy))
    mark_sql, mark_params = ("CASE WHEN s.status = %s AND s.due_at <= %s THEN %s END", [DeliveryStatus.QUEUED, now, now]) if handed is not None else ("NULL", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO campaigns_delivery ({COLUMNS}, enqueued_at) "  # nosec B608
            f"SELECT s.*, {mark_sql} FROM ({sql}) AS s ORDER BY s.member_id "
            f"ON CONFLICT (campaign_id, member_id) WHERE enrolment_id IS NULL DO NOTHING",
            [*mark_params, *params],
        )
        created = cursor.rowcount
        if handed is not None:
            cursor.execute(
                "SELECT id FROM campaigns_delivery WHERE campaign_id = %s AND status = %s AND enqueued_at = %s",
                [campaign.pk, DeliveryStatus.QUEUED, now],
            )
            handed.extend(row[0] for row in cursor.fetchall())
        return created
