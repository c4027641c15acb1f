"""FilterSets over members and orders (django-filter), shown in the admin's
sidebar by crm.admin_filters.FilterSetListFilter and reused wherever staff
filter members (saved circles build on MemberFilter)."""

from __future__ import annotations

import django_filters
from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext_lazy as _

from crm.models import AgeBand, Community, Gender, GroupLeader, Member, Order, OrderStatus


def yes_no_any():
    return forms.Select(choices=[("", _("all")), ("true", _("yes")), ("false", _("no"))])


def type_ahead(model, field: str):
    """The admin's autocomplete widget: thousands of communities or leaders are
    searched as the user types, not rendered as options on every page."""
    return AutocompleteSelect(model._meta.get_field(field), admin.site, attrs={"data-placeholder": _("all")})


class MemberFilter(django_filters.FilterSet):
    community = django_filters.ModelChoiceFilter(
        queryset=Community.objects.all(), label=_("community"), widget=type_ahead(Member, "community")
    )
    leader = django_filters.ModelChoiceFilter(
        field_name="community__leader",
        queryset=GroupLeader.objects.all(),
        label=_("group leader"),
        widget=type_ahead(Community, "leader"),
    )
    gender = django_filters.ChoiceFilter(choices=Gender.choices, label=_("gender"), empty_label=_("all"))
    age_band = django_filters.ChoiceFilter(
        choices=[choice for choice in AgeBand.choices if choice[0]], label=_("age band"), empty_label=_("all")
    )
    registered = django_filters.DateFromToRangeFilter(
        field_name="registered_at",
        label=_("registered between"),
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    has_ordered = django_filters.BooleanFilter(method="filter_has_ordered", label=_("has ordered"), widget=yes_no_any())

    class Meta:
        model = Member
        fields: list[str] = []

    def filter_has_ordered(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        ordered = Exists(Order.objects.filter(member=OuterRef("pk")))
        return queryset.filter(ordered) if value else queryset.exclude(ordered)


class OrderFilter(django_filters.FilterSet):
    member = django_filters.CharFilter(field_name="member__external_id", label=_("member ID"))
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices, label=_("status"), empty_label=_("all"))
    ordered = django_filters.DateFromToRangeFilter(
        field_name="ordered_at",
        label=_("ordered between"),
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    community = django_filters.ModelChoiceFilter(
        field_name="member__community",
        queryset=Community.objects.all(),
        label=_("community"),
        widget=type_ahead(Member, "community"),
    )
    with_coupon = django_filters.BooleanFilter(method="filter_with_coupon", label=_("used a coupon"), widget=yes_no_any())

    class Meta:
        model = Order
        fields: list[str] = []

    def filter_with_coupon(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.exclude(coupon_code="") if value else queryset.filter(coupon_code="")
