"""Circles as saved filters: a django-filter FilterSet over member fields and
the recomputed metrics. A circle's rules are the filter's data (a dict of
strings), so the same rules drive the recompute's materialisation, the live
count in the admin and the campaign audience.

Day-based rules (days since the last order, days since registering) are
relative to an as-of date, like recency everywhere else."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

import django_filters
from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import AgeBand, Category, Community, Gender, Member
from crm.replica import read_connection
from segments.days import local_midnight
from segments.models import Circle, MemberMetrics, RecomputeRun, RiskBand, RunStatus, Tier, Trend
from segments.recompute.scope import members_by, past_day_end

V_THRESHOLD_SECONDS = 3600


class CircleFilter(django_filters.FilterSet):
    tier = django_filters.ModelMultipleChoiceFilter(
        field_name="metrics__tier", queryset=Tier.objects.all(), label=_("tier"), widget=forms.CheckboxSelectMultiple, distinct=False
    )
    has_ordered = django_filters.BooleanFilter(method="filter_has_ordered", label=_("has ordered"))
    recency_min = django_filters.NumberFilter(method="filter_recency_min", label=_("days since last order at least"), min_value=0)
    recency_max = django_filters.NumberFilter(method="filter_recency_max", label=_("days since last order at most"), min_value=0)
    orders_365_min = django_filters.NumberFilter(field_name="metrics__orders_365", lookup_expr="gte", label=_("orders (365 days) at least"), min_value=0)
    orders_365_max = django_filters.NumberFilter(field_name="metrics__orders_365", lookup_expr="lte", label=_("orders (365 days) at most"), min_value=0)
    monthly_orders_below = django_filters.NumberFilter(
        method="filter_monthly_orders_below", label=_("orders per month below"), min_value=0
    )
    spend_365_min = django_filters.NumberFilter(field_name="metrics__spend_365", lookup_expr="gte", label=_("spend (365 days, ¥) at least"), min_value=0)
    spend_365_max = django_filters.NumberFilter(field_name="metrics__spend_365", lookup_expr="lt", label=_("spend (365 days, ¥) below"), min_value=0)
    avg_order_value_min = django_filters.NumberFilter(
        field_name="metrics__avg_order_value", lookup_expr="gte", label=_("average order value (¥) at least"), min_value=0
    )
    promo_share_min = django_filters.NumberFilter(field_name="metrics__promo_share", lookup_expr="gte", label=_("promo share at least (0–1)"), min_value=0, max_value=1)
    promo_share_max = django_filters.NumberFilter(field_name="metrics__promo_share", lookup_expr="lte", label=_("promo share at most (0–1)"), min_value=0, max_value=1)
    refund_rate_min = django_filters.NumberFilter(field_name="metrics__refund_rate", lookup_expr="gte", label=_("return rate at least (0–1)"), min_value=0, max_value=1)
    v_score_min = django_filters.NumberFilter(field_name="metrics__v_score", lookup_expr="gte", label=_("V score at least"), min_value=0)
    v_top_percent = django_filters.NumberFilter(method="filter_v_top_percent", label=_("V score in the top (%)"), min_value=0, max_value=100)
    trend = django_filters.MultipleChoiceFilter(
        field_name="metrics__trend", choices=Trend.choices, label=_("trend"), widget=forms.CheckboxSelectMultiple, distinct=False
    )
    risk_band = django_filters.MultipleChoiceFilter(
        field_name="metrics__risk_band", choices=RiskBand.choices, label=_("churn risk"), widget=forms.CheckboxSelectMultiple, distinct=False
    )
    p_alive_max = django_filters.NumberFilter(field_name="metrics__p_alive", lookup_expr="lte", label=_("P(alive) at most"), min_value=0, max_value=1)
    favourite_category = django_filters.ModelChoiceFilter(
        field_name="metrics__favourite_category", queryset=Category.objects.all(), label=_("favourite category")
    )
    favourite_category_name = django_filters.CharFilter(
        field_name="metrics__favourite_category__name", label=_("favourite category (name)")
    )
    usual_hour_from = django_filters.NumberFilter(field_name="metrics__usual_order_hour", lookup_expr="gte", label=_("usual order hour from"), min_value=0, max_value=23)
    usual_hour_to = django_filters.NumberFilter(field_name="metrics__usual_order_hour", lookup_expr="lte", label=_("usual order hour to"), min_value=0, max_value=23)
    registered_days_min = django_filters.NumberFilter(
        method="filter_registered_days_min", label=_("registered at least days ago"), min_value=0
    )
    gender = django_filters.ChoiceFilter(choices=Gender.choices, label=_("gender"))
    age_band = django_filters.MultipleChoiceFilter(choices=AgeBand.choices, label=_("age band"), widget=forms.CheckboxSelectMultiple, distinct=False)
    community = django_filters.ModelChoiceFilter(queryset=Community.objects.all(), label=_("community"))
    lives_alone = django_filters.BooleanFilter(label=_("lives alone"))
    has_elderly = django_filters.BooleanFilter(label=_("has elderly at home"))
    has_children = django_filters.BooleanFilter(label=_("has children"))
    works_late = django_filters.BooleanFilter(label=_("often works late"))

    # Paths from the filtered model to the metrics and to the member (see MetricsCircleFilter).
    metrics = "metrics__"
    member = ""

    class Meta:
        model = Member
        fields: list[str] = []

    def __init__(self, data=None, queryset=None, *, as_of: dt.date | None = None, **kwargs) -> None:
        super().__init__(data, queryset, **kwargs)
        self.as_of = as_of or timezone.localdate()

    def filter_has_ordered(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(**{f"{self.metrics}last_order_at__isnull": not value})

    def filter_recency_min(self, queryset: QuerySet, name: str, value: Decimal) -> QuerySet:
        # R >= n: the last order's date is on or before as_of - n.
        return queryset.filter(**{f"{self.metrics}last_order_at__lt": local_midnight(self.as_of - dt.timedelta(days=int(value) - 1))})

    def filter_recency_max(self, queryset: QuerySet, name: str, value: Decimal) -> QuerySet:
        return queryset.filter(**{f"{self.metrics}last_order_at__gte": local_midnight(self.as_of - dt.timedelta(days=int(value)))})

    def filter_monthly_orders_below(self, queryset: QuerySet, name: str, value: Decimal) -> QuerySet:
        # Fewer than n orders a month over the 365-day window.
        return queryset.filter(**{f"{self.metrics}orders_365__lt": math.ceil(Decimal(value) * 12)})

    def filter_registered_days_min(self, queryset: QuerySet, name: str, value: Decimal) -> QuerySet:
        return queryset.filter(**{f"{self.member}registered_at__lt": local_midnight(self.as_of - dt.timedelta(days=int(value) - 1))})

    def filter_v_top_percent(self, queryset: QuerySet, name: str, value: Decimal) -> QuerySet:
        threshold = v_score_threshold(float(value), until=past_day_end(self.as_of, timezone.localdate()))
        if threshold is None:
            return queryset.none()
        return queryset.filter(**{f"{self.metrics}v_score__gte": threshold, f"{self.metrics}v_score__gt": 0})


def v_score_threshold(top_percent: float, *, until: dt.datetime | None = None) -> float | None:
    """The V score at the top_percent line of the members who can be in a circle: not erased, and
    for a past day (until, its end) only the members there were by then (members_by), not those
    whose stored rows a later run made. Served by the v_score index; cached for an hour: the line
    moves slowly and counting a million rows on every per-order update would not."""
    key = _v_threshold_key(top_percent, until)
    cached = cache.get(key)
    if cached is not None:
        return cached[0]
    ranked = MemberMetrics.objects.filter(~Exists(Member.objects.filter(pk=OuterRef("member_id"), erased_at__isnull=False)))
    if until is not None:
        ranked = ranked.filter(member__in=members_by(until))
    members = ranked.count()
    position = math.ceil(members * top_percent / 100) - 1
    if members == 0 or position < 0:
        return None
    values = list(ranked.order_by("-v_score").values_list("v_score", flat=True)[position : position + 1])
    threshold = values[0] if values else None
    cache.set(key, (threshold,), V_THRESHOLD_SECONDS)
    return threshold


def _v_threshold_key(top_percent: float, until: dt.datetime | None) -> str:
    return f"segments:v_threshold:{top_percent}" + (f":{until.isoformat()}" if until else "")


def v_score_threshold_forget(until: dt.datetime | None = None) -> None:
    """Forget the cached lines of today, and of the past day ending at until."""
    percents = [float(circle.rules["v_top_percent"]) for circle in Circle.objects.all() if "v_top_percent" in circle.rules]
    cache.delete_many([_v_threshold_key(percent, day_end) for percent in percents for day_end in {None, until}])


class RulesError(ValueError):
    def __init__(self, errors: dict) -> None:
        super().__init__(str(errors))
        self.errors = errors


def circle_filterset(rules: dict, *, as_of: dt.date | None = None, queryset: QuerySet | None = None) -> CircleFilter:
    return CircleFilter(rules or {}, queryset=queryset if queryset is not None else Member.objects.all(), as_of=as_of)


def _filtered(filterset: CircleFilter) -> QuerySet:
    if not filterset.is_valid():
        raise RulesError(filterset.errors)
    return filterset.qs


def circle_queryset(rules: dict, *, as_of: dt.date | None = None, queryset: QuerySet | None = None) -> QuerySet:
    """Members matching rules; erased members are never in a circle."""
    return _filtered(circle_filterset(rules, as_of=as_of, queryset=queryset)).filter(erased_at__isnull=True)


class MetricsCircleFilter(CircleFilter):
    """The same rules over the metrics table (one row per member) instead of
    the members table: what the live count runs on when the rules read metrics
    only (circle_count)."""

    metrics = ""
    member = "member__"

    class Meta:
        model = MemberMetrics
        fields: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        prefix = CircleFilter.metrics
        for filter_ in self.filters.values():
            if not filter_.method:
                name = filter_.field_name
                filter_.field_name = name.removeprefix(prefix) if name.startswith(prefix) else self.member + name


# Rules that read the member's own fields, or that take members who never ordered (a member
# imported a moment ago may have no metrics row yet), are counted through the members table.
MEMBER_RULES = frozenset(
    {name for name, filter_ in CircleFilter.base_filters.items() if not filter_.method and not filter_.field_name.startswith(CircleFilter.metrics)}
    | {"registered_days_min"}
)


def circle_count(rules: dict, *, as_of: dt.date | None = None) -> int:
    """Members a circle's rules take today: the live count before saving, equal
    to circle_queryset(rules).count().

    Rules over metrics only are counted on the metrics table alone, the few
    erased members taken out through their partial index: at a million
    members about a third of the time of the join with the members table.
    Rules taking members who never ordered count those with a metrics row on
    the metrics table (through its last-order index) and add the members
    without one: only members newer than the last full run, which gave
    everyone a row (a member committed during that run with a lower id than
    its newest waits for its own recompute, moments later)."""
    rules = rules or {}
    ordered = str(rules.get("has_ordered", "true")).lower()
    if rules and not MEMBER_RULES & set(rules) and ordered in ("true", "2"):
        return _metrics_count(rules, as_of)
    if ordered in ("false", "3"):
        covered = (
            RecomputeRun.objects.filter(status=RunStatus.DONE, full=True).order_by("-started_at").values_list("max_member_id", flat=True).first()
        )
        if covered is not None:
            unmeasured = Member.objects.filter(id__gt=covered, metrics__isnull=True)
            return _metrics_count(rules, as_of) + circle_queryset(rules, as_of=as_of, queryset=unmeasured).count()
    return circle_queryset(rules, as_of=as_of).count()


def _metrics_matching(rules: dict, as_of: dt.date | None) -> QuerySet:
    erased = Member.objects.filter(pk=OuterRef("member_id"), erased_at__isnull=False)
    return _filtered(MetricsCircleFilter(rules, queryset=MemberMetrics.objects.all(), as_of=as_of)).filter(~Exists(erased))


def _metrics_count(rules: dict, as_of: dt.date | None) -> int:
    """Members with a metrics row whose rules match, counted on the metrics table."""
    return _metrics_matching(rules, as_of).count()


@dataclass(frozen=True)
class Estimate:
    members: int  # rounded to three significant digits
    share: float  # percent of the members with metrics
    sampled_percent: float


def circle_estimate(rules: dict, *, as_of: dt.date | None = None) -> Estimate | None:
    """The preview's count from a sample of the metrics table's pages (TABLESAMPLE SYSTEM,
    REPEATABLE: the same rules give the same figure), or None where it counts exactly: not
    PostgreSQL, a base of at most SEGMENTS_PREVIEW_EXACT_UP_TO, rules on the members table.

    About SEGMENTS_PREVIEW_SAMPLE_ROWS rows are read whatever the base: counting a million
    rows took 270 ms of the database's CPU, the one admin page whose cost grew with the base."""
    rules = rules or {}
    if not rules or MEMBER_RULES & set(rules) or str(rules.get("has_ordered", "true")).lower() not in ("true", "2"):
        return None
    reading = read_connection()
    if reading.vendor != "postgresql":
        return None
    table = MemberMetrics._meta.db_table
    with reading.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        rows = float(cursor.fetchone()[0])
        if rows <= settings.SEGMENTS_PREVIEW_EXACT_UP_TO:
            return None
        percent = min(100.0, 100.0 * settings.SEGMENTS_PREVIEW_SAMPLE_ROWS / rows)
        sql, params = _metrics_matching(rules, as_of).order_by().values("member_id").query.sql_with_params()
        marker = f'FROM "{table}"'
        if sql.count(marker) != 1:
            return None
        sample = f"{marker} TABLESAMPLE SYSTEM ({percent:.6f}) REPEATABLE (7)"
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM ({sql.replace(marker, sample)}) s), (SELECT COUNT(*) {sample})",  # nosec B608 - the ORM's SQL, a number
            params,
        )
        matched, sampled = cursor.fetchone()
    if not sampled:
        return None
    share = matched / sampled
    members = round(share * rows)
    digits = max(0, len(str(members)) - 3)
    return Estimate(members=round(members, -digits), share=round(100 * share, 1), sampled_percent=round(percent, 1))


def rules_from_cleaned(cleaned: dict) -> dict:
    """Store a filter form's cleaned data as plain JSON strings (only the fields that are set)."""
    rules: dict = {}
    for name, value in cleaned.items():
        if value in (None, "", [], ()) or (hasattr(value, "exists") and not value.exists()):
            continue
        if isinstance(value, bool):
            rules[name] = "true" if value else "false"
        elif isinstance(value, Model):
            rules[name] = str(value.pk)
        elif isinstance(value, (list, tuple, QuerySet)):
            rules[name] = [str(item.pk) if isinstance(item, Model) else str(item) for item in value]
        elif isinstance(value, Decimal):
            rules[name] = format(value.normalize(), "f")
        else:
            rules[name] = str(value)
    return rules


def rules_describe(rules: dict) -> str:
    """A one-line human summary: 'label: value; …'."""
    filters = CircleFilter.base_filters
    parts = []
    for name, value in rules.items():
        label = filters[name].label if name in filters else name
        shown = ", ".join(value) if isinstance(value, list) else value
        parts.append(f"{label}: {shown}")
    return "; ".join(parts)
