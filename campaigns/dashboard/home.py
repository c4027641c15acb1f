"""The admin home: the latest KPI snapshot with traffic lights, trends as
server-side SVG (no chart library, nothing from a CDN; every chart has a
table), the migration matrix, campaign and journey results and the leader
board. It reads KpiSnapshot rows only (a few hundred), plus the circles' counts."""

from __future__ import annotations

import datetime as dt

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from campaigns.dashboard.models import Indicator, KpiSnapshot, KpiThreshold, SnapshotKind
from crm.models import GroupLeader
from crm.scoping import sees_many_members
from segments.models import Circle, Tier

TREND_DAYS = 90
HOME_LEADERS = 10  # on the home page: the leaders with the lowest active share
CARDS = [
    # figure, indicator with a light (or None), format
    ("members", None, "int"),
    ("gmv", None, "yuan"),
    ("top5_share", Indicator.TOP5, "pct"),
    ("repurchase_rate", Indicator.REPURCHASE, "pct"),
    ("aov", Indicator.AOV, "yuan"),
    ("avg_ltv", None, "yuan"),
    ("monthly_orders", None, "num"),
    ("first_order_conversion", Indicator.FIRST_ORDER, "pct"),
    ("retention_7d", Indicator.RETENTION, "pct"),
    ("high_risk_share", Indicator.HIGH_RISK, "pct"),
    ("points_liability", None, "yuan"),
    ("redemption_rate", None, "pct"),
    ("growth_spend_ratio", None, "ratio"),
]
TIER_COLUMNS = [
    ("members", None, "int"), ("gmv_share", None, "pct"), ("top5_share", Indicator.TOP5, "pct"),
    ("repurchase_rate", Indicator.REPURCHASE, "pct"), ("aov", Indicator.AOV, "yuan"), ("avg_ltv", None, "yuan"),
    ("monthly_orders", None, "num"), ("first_order_conversion", Indicator.FIRST_ORDER, "pct"),
    ("retention_7d", Indicator.RETENTION, "pct"), ("high_risk_share", Indicator.HIGH_RISK, "pct"),
    ("not_contacted_share", Indicator.NOT_CONTACTED, "pct"), ("marketing_balance", Indicator.MARKETING_BALANCE, "ratio"),
    ("points_issued", None, "int"), ("points_redeemed", None, "int"), ("points_expired", None, "int"),
    ("points_outstanding", None, "int"), ("points_liability", None, "yuan"), ("redemption_rate", None, "pct"),
    ("growth_top_spend", None, "yuan"), ("growth_rest_spend", None, "yuan"),
]
TRENDS = [("members", "int"), ("gmv", "yuan"), ("repurchase_rate", "pct"), ("first_order_conversion", "pct"), ("high_risk_share", "pct")]


def label_of(figure: str) -> str:
    return {
        "members": _("members"), "gmv": _("GMV (365 days)"), "gmv_share": _("share of GMV"),
        "top5_share": _("GMV share of the top 5%"), "repurchase_rate": _("repurchase rate"), "aov": _("average order value"),
        "avg_ltv": _("average LTV"), "monthly_orders": _("orders per member per month"),
        "first_order_conversion": _("first-order conversion (new members)"), "retention_7d": _("7-day retention (new buyers)"),
        "high_risk_share": _("high churn risk"), "not_contacted_share": _("not contacted in 60 days"),
        "marketing_balance": _("marketing share ÷ member share"),
        "points_issued": _("points issued (365 days)"), "points_redeemed": _("points redeemed (365 days)"),
        "points_expired": _("points expired (365 days)"), "points_outstanding": _("points outstanding"),
        "points_liability": _("points liability"), "redemption_rate": _("points redemption rate"),
        "growth_top_spend": _("spend per member, top 10% by growth value"), "growth_rest_spend": _("spend per member, the other 90%"),
        "growth_spend_ratio": _("top growth decile's spend ÷ the rest's"),
    }.get(figure, figure)


def formatted(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "yuan":
        sign, value = ("-", -value) if value < 0 else ("", value)  # -¥80.00, not ¥-80.00
        return f"{sign}¥{value:,.2f}" if value < 10_000 else f"{sign}¥{value:,.0f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "ratio":
        return f"{value:.2f}"
    return f"{value:.2f}"


def light_for(thresholds: dict, indicator: str | None, value) -> str:
    if indicator is None or indicator not in thresholds or value is None:
        return ""
    if indicator == Indicator.MARKETING_BALANCE:
        value = abs(value - 1)
    return thresholds[indicator].light(value)


def line_chart(points: list[tuple[dt.date, float | None]], kind: str, *, width: int = 300, height: int = 90) -> SafeString:
    """A small line chart as inline SVG: the series, its first and last day, its lowest and highest value."""
    values = [(day, value) for day, value in points if value is not None]
    if len(values) < 2:
        return format_html('<p class="help">{}</p>', _("Not enough days yet for a trend."))
    low, high = min(v for _d, v in values), max(v for _d, v in values)
    span = (high - low) or 1.0
    first, last = values[0][0], values[-1][0]
    days = max((last - first).days, 1)
    pad = 4
    coordinates = " ".join(
        f"{pad + (day - first).days / days * (width - 2 * pad):.1f},{pad + (1 - (value - low) / span) * (height - 2 * pad):.1f}"
        for day, value in values
    )
    return format_html(
        '<svg class="crm-chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-label="{label}">'
        '<polyline fill="none" stroke="currentColor" stroke-width="2" points="{points}"></polyline>'
        '<text x="{pad}" y="{h2}" class="crm-chart-axis">{first}</text><text x="{w2}" y="{h2}" text-anchor="end" class="crm-chart-axis">{last}</text>'
        '<text x="{w2}" y="12" text-anchor="end" class="crm-chart-axis">{high}</text></svg>',
        w=width, h=height + 14, h2=height + 12, w2=width - pad, pad=pad, points=coordinates,
        label=f"{formatted(values[0][1], kind)} → {formatted(values[-1][1], kind)}",
        first=first.strftime("%m-%d"), last=last.strftime("%m-%d"), high=formatted(high, kind),
    )


def stacked_bar(parts: list[tuple[str, int, str]], *, width: int = 240, height: int = 14) -> SafeString:
    """One horizontal bar split into parts (label, count, css class)."""
    total = sum(n for _l, n, _c in parts) or 1
    x, rects = 0.0, []
    for label, n, css in parts:
        w = n / total * width
        rects.append((f"{x:.1f}", f"{w:.1f}", height, css, f"{label}: {n}"))
        x += w
    return format_html(
        '<svg class="crm-chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}">{}</svg>',
        format_html_join("", '<rect x="{}" width="{}" height="{}" class="{}"><title>{}</title></rect>', rects),
        w=width, h=height,
    )


def dashboard_context(user) -> dict:
    """What the admin home shows this user (empty when he may not see it)."""
    if not (user.is_active and user.has_perm("campaigns.view_kpisnapshot")):
        return {}
    latest = KpiSnapshot.objects.filter(kind=SnapshotKind.BASE).order_by("-day").first()
    if latest is None:
        return {"dashboard": {"empty": True, "can_build": user.has_perm("campaigns.add_kpisnapshot")}}
    day = latest.day
    everything = sees_many_members(user)
    board = _leader_lines(day, user)
    if everything:
        # Thousands of leaders: the home page shows those who need attention; the full board is a page of its own.
        leaders_total = board.count()
        leaders = list(board.order_by("figures__active_share", "label")[:HOME_LEADERS])
    else:
        leaders = list(board.order_by("label"))
        leaders_total = len(leaders)
    thresholds = {t.indicator: t for t in KpiThreshold.objects.all()}
    ladder = _ladder()
    context = {
        "day": day,
        "computed_at": latest.computed_at,
        "leaders": [_leader_row(r, thresholds, ladder) for r in leaders],
        "leaders_total": leaders_total,
        "leaders_cut": leaders_total > len(leaders),
        "everything": everything,
        "can_build": user.has_perm("campaigns.add_kpisnapshot"),
    }
    if everything:
        rows = list(KpiSnapshot.objects.filter(day=day).exclude(kind=SnapshotKind.LEADER))
        context.update(_full(day, latest, rows, thresholds))
    return {"dashboard": context}


def _leader_lines(day: dt.date, user):
    """The leaders' board rows of the day this user may read: all, or a leader's own."""
    board = KpiSnapshot.objects.filter(day=day, kind=SnapshotKind.LEADER)
    if sees_many_members(user):
        return board
    return board.filter(key__in=[str(pk) for pk in GroupLeader.objects.filter(user=user).values_list("pk", flat=True)])


def leader_board(day: dt.date, user) -> list[dict]:
    """Every leader's line of the day (his own only, for a leader), by name."""
    thresholds = {t.indicator: t for t in KpiThreshold.objects.all()}
    ladder = _ladder()
    return [_leader_row(r, thresholds, ladder) for r in _leader_lines(day, user).order_by("label")]


def _trend(label: str, series: list[tuple[dt.date, float | None]], kind: str) -> dict:
    """A chart and, beside it, the table of its last two weeks."""
    return {"label": label, "chart": line_chart(series, kind), "rows": [(day, formatted(value, kind)) for day, value in series[-14:]]}


def _ladder() -> dict[str, int]:
    """Each tier code's place on the ladder, top first (a code no longer on it goes last)."""
    return {code: place for place, code in enumerate(Tier.objects.order_by("-rank").values_list("code", flat=True))}


def _leader_row(row: KpiSnapshot, thresholds: dict, ladder: dict[str, int]) -> dict:
    f = row.figures
    mix = sorted(f.get("tier_mix", {}).items(), key=lambda item: (ladder.get(item[0], len(ladder)), item[0]))
    return {
        "name": row.label,
        "members": f["members"],
        "active_share": formatted(f.get("active_share"), "pct"),
        "tier_mix": "、".join(f"{code} {n}" for code, n in mix),  # as the ladder reads: S 4、A 33、B 215、C 248
        "new": f"{f.get('new_converted', 0)}/{f.get('new_members', 0)}",
        "follow_up": formatted(f.get("follow_up_rate"), "pct"),
        "follow_up_light": light_for(thresholds, Indicator.FOLLOW_UP, f.get("follow_up_rate")),
    }


def _full(day: dt.date, latest: KpiSnapshot, rows: list[KpiSnapshot], thresholds: dict) -> dict:
    base = latest.figures
    tiers = {t.code: t for t in Tier.objects.order_by("-rank")}
    tier_rows = {r.key: r.figures for r in rows if r.kind == SnapshotKind.TIER}
    cards = [
        {"label": label_of(name), "value": formatted(base.get(name), kind), "light": light_for(thresholds, indicator, base.get(name))}
        for name, indicator, kind in CARDS
    ]
    migration = next((r.figures for r in rows if r.kind == SnapshotKind.MIGRATION), {})
    for name, indicator in (("upgrade_rate", Indicator.UPGRADE), ("downgrade_rate", Indicator.DOWNGRADE)):
        cards.append({"label": Indicator(indicator).label, "value": formatted(migration.get(name), "pct"), "light": light_for(thresholds, indicator, migration.get(name))})
    table = []
    for code, tier in tiers.items():
        figures = tier_rows.get(code)
        if figures is None:
            continue
        cells = [
            {"value": formatted(figures.get(name), kind), "light": light_for(thresholds, indicator, figures.get(name))}
            for name, indicator, kind in TIER_COLUMNS
        ]
        risk = figures.get("risk")
        bar = stacked_bar([(_(band), risk.get(band, 0), f"crm-risk-{band}") for band in ("low", "medium", "high", "unknown")]) if risk else ""
        table.append({"tier": f"{tier.code} {tier.name}", "cells": cells, "risk": risk, "risk_bar": bar})
    history = list(KpiSnapshot.objects.filter(kind=SnapshotKind.BASE, day__gt=day - dt.timedelta(days=TREND_DAYS), day__lte=day).order_by("day"))
    trends = [_trend(label_of(name), [(h.day, h.figures.get(name)) for h in history], kind) for name, kind in TRENDS]
    codes = [code for code in tiers if code in migration.get("matrix", {}) or any(code in to for to in migration.get("matrix", {}).values())]
    matrix = [
        {"from": code, "cells": [migration["matrix"].get(code, {}).get(to, 0) for to in codes]}
        for code in codes
    ]
    members = base.get("members") or 0
    circles = [
        {
            "name": circle.name,
            "count": circle.member_count,
            "share": formatted(circle.member_count / members if members else None, "pct"),
            "usual": f"{circle.usual_share:g}%" if circle.usual_share is not None else "—",
        }
        for circle in Circle.objects.filter(active=True, kind="circle").order_by("name")
    ]
    # Campaign and journey results over time: each day's 90-day totals.
    totals: dict[dt.date, list[float]] = {}
    for h in KpiSnapshot.objects.filter(
        kind__in=[SnapshotKind.CAMPAIGN, SnapshotKind.JOURNEY], day__gt=day - dt.timedelta(days=TREND_DAYS), day__lte=day
    ).only("day", "figures"):
        sums = totals.setdefault(h.day, [0.0, 0.0, 0.0])
        sums[0] += h.figures.get("sent", 0)
        sums[1] += h.figures.get("revenue", 0)
        sums[2] += h.figures.get("cost", 0)
    days = sorted(totals)
    result_trends = [
        _trend(label, [(d, pick(totals[d])) for d in days], kind)
        for label, pick, kind in (
            (_("messages sent (90 days)"), lambda t: t[0], "int"),
            (_("attributed revenue (90 days)"), lambda t: t[1], "yuan"),
            (_("ROI (90 days)"), lambda t: (t[1] - t[2]) / t[2] if t[2] else None, "ratio"),
        )
    ]
    results = []
    for kind in (SnapshotKind.CAMPAIGN, SnapshotKind.JOURNEY):
        for r in sorted((r for r in rows if r.kind == kind), key=lambda r: -r.figures.get("sent", 0)):
            f = r.figures
            results.append(
                {
                    "kind": r.get_kind_display(), "name": r.label, "sent": f["sent"], "converted": f["converted"],
                    "revenue": formatted(f["revenue"], "yuan"), "cost": formatted(f["cost"], "yuan"),
                    "incremental": formatted(f.get("incremental"), "yuan"),
                    "roi": formatted(f.get("roi"), "ratio"), "light": light_for(thresholds, Indicator.ROI, f.get("roi")),
                }
            )
    return {
        "cards": cards,
        "tier_columns": [label_of(name) for name, _i, _k in TIER_COLUMNS],
        "tiers": table,
        "trends": trends,
        "matrix_codes": codes,
        "matrix": matrix,
        "migration": migration,
        "circles": circles,
        "results": results,
        "result_trends": result_trends,
    }
