"""The figures staff watch, per day: written once a night into KpiSnapshot
(a few hundred rows), so that the dashboard never reads the order table.

Definitions, for the day D (Asia/Shanghai) with END = the midnight after D:
- A member's tier on D is the tier of his latest TierChange before END; members
  never placed, and members erased before END, are left out. "Base" is every
  placed member; each tier is a segment of it.
- Y is the 365 days before END. gmv / orders: paid orders in Y. gmv_share: the
  segment's gmv over the base's. top5_share: the gmv of the segment's top
  ceil(5%) members by their gmv in Y over the segment's gmv.
- repurchase_rate: members with 2+ orders in Y over members with 1+.
  aov: gmv / orders. avg_ltv: all paid orders before END / members.
  monthly_orders: orders / 12 / members.
- new_members: registered in the 30 days before END; first_order_conversion:
  the share of them with a paid order before END. retention_7d: of the members
  whose first paid order fell 37 to 7 days before END, the share with another
  paid order after it dated at most 7 calendar days after its day.
- risk_*: churn risk bands of the current metrics (only on the day itself;
  a past day rebuilt has none). high_risk_share: high / members.
- not_contacted_share: members with no message sent in the N days before END
  (N: KpiSettings.not_contacted_days). marketing_share: the segment's share of
  the marketing messages sent in the 30 days before END; marketing_balance:
  that share over the segment's share of members (1 = even).
- migration: tier 30 days before END against tier on D, for members placed on
  both; upgrade_rate / downgrade_rate: moved up / down over those members.
- leaders: members of his communities, active_share (ordered in the 30 days
  before END), tier mix, new members and how many of them ordered, and the
  worklist follow-up rate of the 30 days up to D.
- points (ledger entries with business time before END): points_outstanding,
  the sum of every entry; points_liability, that times
  LoyaltySettings.point_value; points_issued / points_redeemed /
  points_expired, what orders and positive adjustments earned, redemptions
  spent and expiries took in Y (net of refunds); redemption_rate: redeemed
  over issued in Y.
- growth deciles: the segment's top ceil(10%) members by growth value before
  END against the others: their average spend in Y (growth_top_spend,
  growth_rest_spend) and its ratio (growth_spend_ratio; DOMAIN.md quotes 3.2x for
  its seeds; this demo's 2,000 members show 6.6x, its tiers 1.4x to 2.9x).
- campaigns (and journeys, their steps summed) with a message sent in the 90
  days before END: sent, converted, revenue (attributed: last touch,
  campaigns.reports), cost (messages × KpiSettings.message_cost + redeemed
  coupon values), roi = (revenue - cost) / cost, and incremental: the revenue
  above what as many members of the control group bought in the same window
  (revenue - sent × control revenue / control members; None without a control
  group, for a journey unless every step has one).

Everything is computed set-based from a temporary table of one row per member
(one GROUP BY over the orders), so a day costs a few aggregate queries."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Coupon, Delivery, DeliveryStatus
from campaigns.dashboard.models import KpiSettings, KpiSnapshot, SnapshotKind
from campaigns.worklist.services import follow_up_rates
from crm.models import GroupLeader, OrderStatus
from loyalty.models import LoyaltySettings, RuleCode
from segments.history import tier_as_of_sql
from segments.recompute.base import days_after_end_sql
from segments.models import Tier

BASE = ""
RISK_BANDS = ("low", "medium", "high", "")


def end_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))


def _ratio(numerator, denominator) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _money(value) -> float:
    return round(float(value or 0), 2)


def _fetch(cursor, sql: str, params: list) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def _member_table(cursor, end: dt.datetime) -> None:
    """kpi_m: one row per placed member with his tier on D and his order figures."""
    year, month = end - dt.timedelta(days=365), end - dt.timedelta(days=30)
    cursor.execute("DROP TABLE IF EXISTS kpi_m")
    cursor.execute(
        f"""CREATE TEMP TABLE kpi_m AS
        SELECT m.id AS member_id, t.to_tier_id AS tier_id, m.community_id AS community_id, c.leader_id AS leader_id,
               m.registered_at AS registered_at,
               COALESCE(o.spend, 0) AS spend, COALESCE(o.orders, 0) AS orders, COALESCE(o.ltv, 0) AS ltv,
               COALESCE(o.orders_30, 0) AS orders_30, o.first_at AS first_at,
               COALESCE(g.growth, 0) AS growth, COALESCE(p.outstanding, 0) AS points_outstanding,
               COALESCE(p.issued, 0) AS points_issued, COALESCE(p.redeemed, 0) AS points_redeemed,
               COALESCE(p.expired, 0) AS points_expired
          FROM ({tier_as_of_sql()}) t
          JOIN crm_member m ON m.id = t.member_id
          LEFT JOIN crm_community c ON c.id = m.community_id
          LEFT JOIN (
               SELECT member_id,
                      SUM(CASE WHEN ordered_at >= %s THEN amount ELSE 0 END) AS spend,
                      SUM(CASE WHEN ordered_at >= %s THEN 1 ELSE 0 END) AS orders,
                      SUM(amount) AS ltv,
                      SUM(CASE WHEN ordered_at >= %s THEN 1 ELSE 0 END) AS orders_30,
                      MIN(ordered_at) AS first_at
                 FROM crm_order WHERE status = %s AND ordered_at < %s
                GROUP BY member_id
          ) o ON o.member_id = m.id
          LEFT JOIN (SELECT member_id, SUM(amount) AS growth FROM loyalty_growthentry WHERE occurred_at < %s GROUP BY member_id) g
            ON g.member_id = m.id
          LEFT JOIN (
               SELECT member_id, SUM(amount) AS outstanding,
                      SUM(CASE WHEN occurred_at >= %s AND (rule = %s OR (rule = %s AND amount > 0)) THEN amount ELSE 0 END) AS issued,
                      -SUM(CASE WHEN occurred_at >= %s AND rule = %s THEN amount ELSE 0 END) AS redeemed,
                      -SUM(CASE WHEN occurred_at >= %s AND rule = %s THEN amount ELSE 0 END) AS expired
                 FROM loyalty_pointsentry WHERE occurred_at < %s GROUP BY member_id
          ) p ON p.member_id = m.id
         WHERE m.erased_at IS NULL OR m.erased_at >= %s""",  # nosec B608 - fixed fragments; values are parameters
        [
            end, year, year, month, OrderStatus.PAID, end, end,
            year, RuleCode.ORDER_POINTS, RuleCode.ADJUSTMENT, year, RuleCode.REDEMPTION, year, RuleCode.EXPIRY, end,
            end,
        ],
    )
    if connection.vendor == "postgresql":
        cursor.execute("ANALYZE kpi_m")  # every figure after reads it: give the planner its size


def _segments(cursor, end: dt.datetime, settings: KpiSettings, with_risk: bool, tiers: dict[int, Tier], point_value: Decimal) -> dict[str, dict]:
    # Counts per segment, missing ones 0. One GROUP BY tier per figure family; the
    # base is the sum of the tiers, except the top 5%, which is its own query.
    rows: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    rows[BASE]  # the base exists even with nobody placed

    def add(tier_id, **counts) -> None:
        for key in (tiers[tier_id].code if tier_id in tiers else "?", BASE):
            for name, n in counts.items():
                rows[key][name] += n or 0

    for tier_id, members, gmv, orders, buyers, repeaters, ltv in _fetch(
        cursor,
        "SELECT tier_id, COUNT(*), SUM(spend), SUM(orders), SUM(CASE WHEN orders >= 1 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN orders >= 2 THEN 1 ELSE 0 END), SUM(ltv) FROM kpi_m GROUP BY tier_id",
        [],
    ):
        add(tier_id, members=members, gmv=float(gmv or 0), orders=int(orders or 0), buyers=int(buyers or 0),
            repeaters=int(repeaters or 0), ltv_total=float(ltv or 0))

    top_sql = (
        "SELECT {group} SUM(spend) FROM (SELECT tier_id, spend, "
        "ROW_NUMBER() OVER ({partition} ORDER BY spend DESC, member_id) AS rn, COUNT(*) OVER ({partition}) AS n FROM kpi_m) r "
        "WHERE rn * 100 <= n * 5 + 99 {group_by}"
    )
    for tier_id, top in _fetch(cursor, top_sql.format(group="tier_id,", partition="PARTITION BY tier_id", group_by="GROUP BY tier_id"), []):
        rows[tiers[tier_id].code if tier_id in tiers else "?"]["top_gmv"] = float(top or 0)
    [(top,)] = _fetch(cursor, top_sql.format(group="", partition="", group_by=""), []) or [(0,)]
    rows[BASE]["top_gmv"] = float(top or 0)

    for tier_id, outstanding, issued, redeemed, expired in _fetch(
        cursor,
        "SELECT tier_id, SUM(points_outstanding), SUM(points_issued), SUM(points_redeemed), SUM(points_expired) FROM kpi_m GROUP BY tier_id",
        [],
    ):
        add(tier_id, points_outstanding=int(outstanding or 0), points_issued=int(issued or 0),
            points_redeemed=int(redeemed or 0), points_expired=int(expired or 0))

    decile_sql = (
        "SELECT {group} SUM(CASE WHEN rn * 100 <= n * 10 + 99 THEN spend ELSE 0 END), SUM(CASE WHEN rn * 100 <= n * 10 + 99 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN rn * 100 > n * 10 + 99 THEN spend ELSE 0 END), SUM(CASE WHEN rn * 100 > n * 10 + 99 THEN 1 ELSE 0 END) "
        "FROM (SELECT tier_id, spend, ROW_NUMBER() OVER ({partition} ORDER BY growth DESC, member_id) AS rn, "
        "COUNT(*) OVER ({partition}) AS n FROM kpi_m) r {group_by}"
    )
    for tier_id, *split in _fetch(cursor, decile_sql.format(group="tier_id,", partition="PARTITION BY tier_id", group_by="GROUP BY tier_id"), []):
        rows[tiers[tier_id].code if tier_id in tiers else "?"]["growth_split"] = split
    for split in _fetch(cursor, decile_sql.format(group="", partition="", group_by=""), []):
        rows[BASE]["growth_split"] = list(split)

    new_since = end - dt.timedelta(days=30)
    for tier_id, new, converted in _fetch(
        cursor,
        "SELECT tier_id, COUNT(*), SUM(CASE WHEN first_at IS NOT NULL THEN 1 ELSE 0 END) FROM kpi_m "
        "WHERE registered_at >= %s AND registered_at < %s GROUP BY tier_id",
        [new_since, end],
    ):
        add(tier_id, new_members=new, new_converted=int(converted or 0))

    cohort_from, cohort_to = end - dt.timedelta(days=37), end - dt.timedelta(days=7)
    within = f"o.ordered_at < {days_after_end_sql('k.first_at', '7')}"
    for tier_id, cohort, kept in _fetch(
        cursor,
        f"SELECT k.tier_id, COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM crm_order o WHERE o.member_id = k.member_id "
        f"AND o.status = %s AND o.ordered_at > k.first_at AND {within}) THEN 1 ELSE 0 END) "  # nosec B608 - fixed fragments
        f"FROM kpi_m k WHERE k.first_at >= %s AND k.first_at < %s GROUP BY k.tier_id",
        [OrderStatus.PAID, cohort_from, cohort_to],
    ):
        add(tier_id, cohort=cohort, retained=int(kept or 0))

    contact_since = end - dt.timedelta(days=settings.not_contacted_days)
    for tier_id, untouched in _fetch(
        cursor,
        "SELECT k.tier_id, COUNT(*) FROM kpi_m k WHERE NOT EXISTS (SELECT 1 FROM campaigns_delivery d "
        "WHERE d.member_id = k.member_id AND d.status = %s AND d.sent_at >= %s AND d.sent_at < %s) GROUP BY k.tier_id",
        [DeliveryStatus.SENT, contact_since, end],
    ):
        add(tier_id, not_contacted=untouched)

    for tier_id, messages in _fetch(
        cursor,
        "SELECT k.tier_id, COUNT(*) FROM campaigns_delivery d JOIN kpi_m k ON k.member_id = d.member_id "
        "WHERE d.is_marketing AND d.status = %s AND d.sent_at >= %s AND d.sent_at < %s GROUP BY k.tier_id",
        [DeliveryStatus.SENT, new_since, end],
    ):
        add(tier_id, marketing_messages=messages)

    if with_risk:
        for tier_id, band, n in _fetch(
            cursor,
            "SELECT k.tier_id, COALESCE(mm.risk_band, ''), COUNT(*) FROM kpi_m k "
            "LEFT JOIN segments_membermetrics mm ON mm.member_id = k.member_id GROUP BY k.tier_id, COALESCE(mm.risk_band, '')",
            [],
        ):
            add(tier_id, **{f"risk:{band if band in RISK_BANDS else ''}": n})
    return {key: _figures(raw, rows[BASE], with_risk, point_value) for key, raw in rows.items()}


def _figures(raw: dict, base: dict, with_risk: bool, point_value: Decimal) -> dict:
    members = raw["members"]
    figures = {
        "members": members,
        "gmv": _money(raw["gmv"]),
        "orders": raw["orders"],
        "gmv_share": _ratio(raw["gmv"], base["gmv"]),
        "top5_share": _ratio(raw.get("top_gmv", 0), raw["gmv"]),
        "repurchase_rate": _ratio(raw["repeaters"], raw["buyers"]),
        "aov": _ratio(raw["gmv"], raw["orders"]),
        "avg_ltv": _ratio(raw["ltv_total"], members),
        "monthly_orders": _ratio(raw["orders"], 12 * members) if members else None,
        "new_members": raw.get("new_members", 0),
        "first_order_conversion": _ratio(raw.get("new_converted", 0), raw.get("new_members", 0)),
        "retention_cohort": raw.get("cohort", 0),
        "retention_7d": _ratio(raw.get("retained", 0), raw.get("cohort", 0)),
        "not_contacted_share": _ratio(raw.get("not_contacted", 0), members),
        "marketing_messages": raw.get("marketing_messages", 0),
    }
    share_of_marketing = _ratio(raw.get("marketing_messages", 0), base.get("marketing_messages", 0))
    share_of_members = _ratio(members, base["members"])
    figures["marketing_share"] = share_of_marketing
    figures["marketing_balance"] = _ratio(share_of_marketing, share_of_members) if share_of_marketing is not None and share_of_members else None
    top_spend, top_n, rest_spend, rest_n = raw.get("growth_split") or (0, 0, 0, 0)
    figures.update({
        "points_outstanding": raw.get("points_outstanding", 0),
        "points_liability": _money(Decimal(raw.get("points_outstanding", 0)) * point_value),
        "points_issued": raw.get("points_issued", 0),
        "points_redeemed": raw.get("points_redeemed", 0),
        "points_expired": raw.get("points_expired", 0),
        "redemption_rate": _ratio(raw.get("points_redeemed", 0), raw.get("points_issued", 0)),
        "growth_top_spend": _ratio(top_spend or 0, top_n),
        "growth_rest_spend": _ratio(rest_spend or 0, rest_n),
    })
    figures["growth_spend_ratio"] = _ratio(figures["growth_top_spend"], figures["growth_rest_spend"]) if figures["growth_top_spend"] is not None else None
    for name in ("growth_top_spend", "growth_rest_spend"):
        if figures[name] is not None:
            figures[name] = _money(figures[name])
    if with_risk:
        figures["risk"] = {band or "unknown": raw.get(f"risk:{band}", 0) for band in RISK_BANDS}
        figures["high_risk_share"] = _ratio(raw.get("risk:high", 0), members)
    for name in ("aov", "avg_ltv"):
        if figures[name] is not None:
            figures[name] = _money(figures[name])
    return figures


def _migration(cursor, end: dt.datetime, tiers: dict[int, Tier]) -> dict:
    """Tier 30 days before END against tier on D, for members placed on both days."""
    ranks = {pk: tier.rank for pk, tier in tiers.items()}
    codes = {pk: tier.code for pk, tier in tiers.items()}
    # kpi_m holds each placed member's tier on D (erased ones left out as here); the tier 30 days
    # before goes into a table of its own first. Two window subqueries joined directly were
    # estimated at a few rows each and planned as a nested loop: 1.7M moves took over 6 minutes.
    cursor.execute("DROP TABLE IF EXISTS kpi_before")
    cursor.execute(f"CREATE TEMP TABLE kpi_before AS {tier_as_of_sql()}", [end - dt.timedelta(days=30)])  # nosec B608
    if connection.vendor == "postgresql":
        cursor.execute("ANALYZE kpi_before")
    before = _fetch(
        cursor,
        "SELECT a.to_tier_id, k.tier_id, COUNT(*) FROM kpi_before a JOIN kpi_m k ON k.member_id = a.member_id GROUP BY a.to_tier_id, k.tier_id",
        [],
    )
    cursor.execute("DROP TABLE kpi_before")
    matrix: dict[str, dict[str, int]] = defaultdict(dict)
    total = up = down = 0
    for was, now, n in before:
        matrix[codes.get(was, "?")][codes.get(now, "?")] = n
        total += n
        if ranks.get(now, 0) > ranks.get(was, 0):
            up += n
        elif ranks.get(now, 0) < ranks.get(was, 0):
            down += n
    return {"matrix": dict(matrix), "members": total, "upgrade_rate": _ratio(up, total), "downgrade_rate": _ratio(down, total)}


def _leaders(cursor, day: dt.date, end: dt.datetime, tiers: dict[int, Tier]) -> dict[int, dict]:
    codes = {pk: tier.code for pk, tier in tiers.items()}
    leaders: dict[int, dict] = {}
    new_since = end - dt.timedelta(days=30)
    for leader_id, tier_id, members, active, new, converted in _fetch(
        cursor,
        "SELECT leader_id, tier_id, COUNT(*), SUM(CASE WHEN orders_30 > 0 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN registered_at >= %s AND registered_at < %s THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN registered_at >= %s AND registered_at < %s AND first_at IS NOT NULL THEN 1 ELSE 0 END) "
        "FROM kpi_m WHERE leader_id IS NOT NULL GROUP BY leader_id, tier_id",
        [new_since, end, new_since, end],
    ):
        row = leaders.setdefault(leader_id, {"members": 0, "active": 0, "new_members": 0, "new_converted": 0, "tier_mix": {}})
        row["members"] += members
        row["active"] += int(active or 0)
        row["new_members"] += int(new or 0)
        row["new_converted"] += int(converted or 0)
        row["tier_mix"][codes.get(tier_id, "?")] = members
    follow = {row["leader_id"]: row for row in follow_up_rates(today=day)}
    for leader_id, row in leaders.items():
        row["active_share"] = _ratio(row["active"], row["members"])
        row["new_conversion"] = _ratio(row["new_converted"], row["new_members"])
        marked = follow.get(leader_id)
        row["worklist_listed"] = marked["listed"] if marked else 0
        row["follow_up_rate"] = marked["rate"] if marked else None
    return leaders


def _campaign_results(end: dt.datetime, settings: KpiSettings) -> tuple[dict, dict]:
    from campaigns.reports import conversions

    since = end - dt.timedelta(days=90)
    recent = Campaign.objects.filter(
        pk__in=Delivery.objects.filter(status=DeliveryStatus.SENT, sent_at__gte=since, sent_at__lt=end).values("campaign_id")
    ).select_related("journey_step__journey")
    campaigns: dict[int, dict] = {}
    journeys: dict[int, dict] = {}
    for campaign in recent:
        counts = Delivery.objects.filter(campaign=campaign).aggregate(
            sent=Count("id", filter=Q(status=DeliveryStatus.SENT, sent_at__lt=end)),
            held=Count("id", filter=Q(status=DeliveryStatus.CONTROL, due_at__lt=end)),
        )
        sent, held = counts["sent"], counts["held"]
        converted = revenue = 0
        held_revenue = Decimal(0)
        for (variant, status), (members, _orders, amount) in conversions(campaign, until=end).items():
            if status == DeliveryStatus.SENT:
                converted += members
                revenue += amount
            elif status == DeliveryStatus.CONTROL:
                held_revenue += amount
        coupons = Coupon.objects.filter(campaign=campaign, redeemed_at__isnull=False, redeemed_at__lt=end).aggregate(v=Sum("value"))["v"] or 0
        cost = Decimal(sent) * settings.message_cost + Decimal(str(coupons))
        # Above what the same number of members held back bought in the same window: None without a control group.
        incremental = float(revenue - sent * held_revenue / held) if held else None
        row = {"name": campaign.name, "sent": sent, "converted": converted, "revenue": float(revenue), "cost": float(cost), "incremental": incremental}
        if campaign.status == CampaignStatus.JOURNEY and hasattr(campaign, "journey_step"):
            journey = campaign.journey_step.journey
            total = journeys.setdefault(journey.pk, {"name": journey.name, "sent": 0, "converted": 0, "revenue": 0.0, "cost": 0.0, "incremental": 0.0})
            for name in ("sent", "converted", "revenue", "cost"):
                total[name] += row[name]
            # A journey's incremental revenue is known when every step's is.
            total["incremental"] = None if total["incremental"] is None or incremental is None else total["incremental"] + incremental
        else:
            campaigns[campaign.pk] = row
    for row in (*campaigns.values(), *journeys.values()):
        row["revenue"], row["cost"] = _money(row["revenue"]), _money(row["cost"])
        row["incremental"] = None if row["incremental"] is None else _money(row["incremental"])
        row["roi"] = _ratio(row["revenue"] - row["cost"], row["cost"])
    return campaigns, journeys


def snapshot_build(as_of: dt.date | None = None, *, now: dt.datetime | None = None) -> dict:
    """Compute and store the day's snapshot (replacing one built before); returns its figures."""
    now = now or timezone.now()
    as_of = as_of or timezone.localdate(now)
    end = end_of(as_of)
    settings = KpiSettings.current()
    with_risk = as_of >= timezone.localdate(now)  # risk bands exist for today only
    leaders_by_id = {leader.pk: leader.display_name for leader in GroupLeader.objects.all()}
    tiers = {tier.pk: tier for tier in Tier.objects.all()}
    with transaction.atomic(), connection.cursor() as cursor:
        _member_table(cursor, end)
        segments = _segments(cursor, end, settings, with_risk, tiers, LoyaltySettings.current().point_value)
        migration = _migration(cursor, end, tiers)
        leaders = _leaders(cursor, as_of, end, tiers)
        cursor.execute("DROP TABLE kpi_m")
        campaigns, journeys = _campaign_results(end, settings)
        tier_names = {tier.code: tier.name for tier in tiers.values()}
        rows = [KpiSnapshot(day=as_of, kind=SnapshotKind.BASE, key=BASE, label="", figures=segments.pop(BASE))]
        rows += [KpiSnapshot(day=as_of, kind=SnapshotKind.TIER, key=code, label=tier_names.get(code, code), figures=f) for code, f in segments.items()]
        rows.append(KpiSnapshot(day=as_of, kind=SnapshotKind.MIGRATION, key=BASE, figures=migration))
        rows += [
            KpiSnapshot(day=as_of, kind=SnapshotKind.LEADER, key=str(pk), label=leaders_by_id.get(pk, ""), figures=f) for pk, f in leaders.items()
        ]
        rows += [KpiSnapshot(day=as_of, kind=SnapshotKind.CAMPAIGN, key=str(pk), label=f["name"], figures=f) for pk, f in campaigns.items()]
        rows += [KpiSnapshot(day=as_of, kind=SnapshotKind.JOURNEY, key=str(pk), label=f["name"], figures=f) for pk, f in journeys.items()]
        for row in rows:
            row.computed_at = now
        KpiSnapshot.objects.filter(day=as_of).delete()
        KpiSnapshot.objects.bulk_create(rows)
    return snapshot_figures(as_of)


def snapshot_figures(day: dt.date) -> dict:
    """The stored snapshot of a day, as kpi_snapshot --json prints it."""
    result: dict = {"day": day.isoformat(), "base": None, "tiers": {}, "migration": None, "leaders": {}, "campaigns": {}, "journeys": {}}
    for row in KpiSnapshot.objects.filter(day=day):
        if row.kind == SnapshotKind.BASE:
            result["base"] = row.figures
        elif row.kind == SnapshotKind.TIER:
            result["tiers"][row.key] = row.figures
        elif row.kind == SnapshotKind.MIGRATION:
            result["migration"] = row.figures
        else:
            result[f"{row.kind}s"][row.label or row.key] = row.figures
    return result

