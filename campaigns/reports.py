"""What a campaign achieved, per variant and for the control group.

Attribution is last touch: a paid order converts a delivery when it comes
after the send (for the control group, after the moment the message would
have gone) and within the campaign's conversion window (dated at most N
calendar days after the send's day, Asia/Shanghai), and no other message
reached the member in between. Refunded orders never count."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count

from campaigns.models import PENDING, Campaign, Delivery, DeliveryStatus, SkipReason
from campaigns.services import coupon_totals
from crm.models import OrderStatus
from crm.replica import read_connection
from segments.recompute.base import days_after_end_sql


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """z and the two-sided p-value for rate x1/n1 against x2/n2 (pooled standard error)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def conversions(campaign: Campaign, *, until: dt.datetime | None = None) -> dict[tuple[int | None, str], tuple[int, int, Decimal]]:
    """(variant, status) → (members converted, orders, revenue); the control group under variant None.
    until: only the orders placed before it (a past day's figures, as they stood that day)."""
    ref = "COALESCE(d.sent_at, d.due_at)"
    cut, cut_params = ("AND o.ordered_at < %s", [until]) if until is not None else ("", [])
    sql = f"""
        SELECT d.variant_id, d.status, COUNT(DISTINCT d.id), COUNT(o.id), SUM(o.amount)
          FROM campaigns_delivery d
          JOIN crm_order o ON o.member_id = d.member_id AND o.status = %s
                          AND o.ordered_at > {ref} AND o.ordered_at < {days_after_end_sql(ref, '%s')} {cut}
         WHERE d.campaign_id = %s AND d.status IN (%s, %s)
           AND NOT EXISTS (
                SELECT 1 FROM campaigns_delivery d2
                 WHERE d2.member_id = d.member_id AND d2.id <> d.id AND d2.status = %s
                   AND d2.sent_at > {ref} AND d2.sent_at < o.ordered_at)
         GROUP BY d.variant_id, d.status
    """  # nosec B608 - fixed fragments; values are parameters
    params = [OrderStatus.PAID, campaign.conversion_days, *cut_params, campaign.pk, DeliveryStatus.SENT, DeliveryStatus.CONTROL, DeliveryStatus.SENT]
    totals: dict[tuple[int | None, str], tuple[int, int, Decimal]] = {}
    with read_connection().cursor() as cursor:
        cursor.execute(sql, params)
        for variant, status, members, orders, revenue in cursor.fetchall():
            key = (None if status == DeliveryStatus.CONTROL else variant, status)  # the control group is one group
            before = totals.get(key, (0, 0, Decimal("0.00")))
            totals[key] = (before[0] + members, before[1] + orders, before[2] + Decimal(str(revenue or 0)).quantize(Decimal("0.01")))
    return totals


def campaign_report(campaign: Campaign) -> dict:
    counts: dict[int | None, dict] = defaultdict(lambda: defaultdict(int))
    skipped: dict[int | None, dict] = defaultdict(lambda: defaultdict(int))
    status_counts = (
        Delivery.objects.filter(campaign=campaign).values_list("variant_id", "status", "skip_reason").order_by().annotate(n=Count("id"))
    )
    for variant_id, status, reason, n in status_counts:
        key = None if status == DeliveryStatus.CONTROL else variant_id
        counts[key][status] += n
        if status == DeliveryStatus.SKIPPED:
            skipped[key][reason] += n
    converted = conversions(campaign)
    control_n = counts[None][DeliveryStatus.CONTROL] if None in counts else 0
    control_conv = converted.get((None, DeliveryStatus.CONTROL), (0, 0, Decimal("0.00")))
    control_rate = control_conv[0] / control_n if control_n else None

    def row(label: str, audience: dict, reasons: dict, conv, base: int, *, is_control: bool = False) -> dict:
        members, orders, revenue = conv
        rate = members / base if base else None
        result = {
            "label": label,
            "is_control": is_control,
            "members": sum(audience.values()),
            "sent": audience.get(DeliveryStatus.SENT, 0),
            "failed": audience.get(DeliveryStatus.FAILED, 0),
            "unknown": audience.get(DeliveryStatus.UNKNOWN, 0),
            "pending": sum(audience.get(s, 0) for s in PENDING),
            "held_back": audience.get(DeliveryStatus.CONTROL, 0),
            "skipped": {code: reasons.get(code, 0) for code in SkipReason.values},
            "converted": members,
            "conversion_rate": rate,
            "orders": orders,
            "revenue": revenue,
            "average_order_value": (revenue / orders).quantize(Decimal("0.01")) if orders else None,
            "uplift": None,
            "p_value": None,
        }
        if not is_control and rate is not None and control_rate is not None:
            result["uplift"] = rate - control_rate
            test = two_proportion_test(members, base, control_conv[0], control_n)
            result["p_value"] = test[1] if test else None
        return result

    rows = []
    for variant in campaign.variants.order_by("label"):
        audience = counts.get(variant.pk, {})
        conv = converted.get((variant.pk, DeliveryStatus.SENT), (0, 0, Decimal("0.00")))
        rows.append(row(variant.label, audience, skipped.get(variant.pk, {}), conv, audience.get(DeliveryStatus.SENT, 0)))
    if control_n:
        rows.append(row("control", counts[None], {}, control_conv, control_n, is_control=True))
    sent_rows = [r for r in rows if not r["is_control"]]
    total_orders = sum(r["orders"] for r in sent_rows)
    total_revenue = sum((r["revenue"] for r in sent_rows), Decimal("0.00"))
    totals = {
        "members": sum(r["members"] for r in rows),
        "sent": sum(r["sent"] for r in sent_rows),
        "failed": sum(r["failed"] for r in sent_rows),
        "unknown": sum(r["unknown"] for r in sent_rows),
        "pending": sum(r["pending"] for r in sent_rows),
        "held_back": control_n,
        "skipped": {code: sum(r["skipped"][code] for r in sent_rows) for code in SkipReason.values},
        "converted": sum(r["converted"] for r in sent_rows),
        "orders": total_orders,
        "revenue": total_revenue,
        "average_order_value": (total_revenue / total_orders).quantize(Decimal("0.01")) if total_orders else None,
    }
    totals["conversion_rate"] = totals["converted"] / totals["sent"] if totals["sent"] else None
    return {
        "campaign": campaign.name,
        "status": campaign.status,
        "conversion_days": campaign.conversion_days,
        "rows": rows,
        "totals": totals,
        "coupons": coupon_totals(campaign),
    }


def report_json(report: dict) -> dict:
    """The report with decimals as strings (for --json and the API)."""

    def plain(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    return plain(report)
