"""The group leader's worklist with its rules and settings."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.worklist.models import WorklistItem, WorklistOutcome, WorklistRule, WorklistSettings
from campaigns.worklist.services import follow_up_rates
from crm.admin_base import ScopedAdmin, SingletonAdmin
from crm.masking import mask_mobile
from crm.models import GroupLeader
from crm.scoping import sees_many_members

class WorklistDayFilter(admin.SimpleListFilter):
    """Today's list unless the leader asks for another day."""

    title = _("day")
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return (("today", _("today")), ("yesterday", _("yesterday")), ("week", _("last 7 days")), ("all", _("all days")))

    def choices(self, changelist):
        value = self.value() or "today"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        today = timezone.localdate()
        value = self.value() or "today"
        if value == "today":
            return queryset.filter(day=today)
        if value == "yesterday":
            return queryset.filter(day=today - dt.timedelta(days=1))
        if value == "week":
            return queryset.filter(day__gt=today - dt.timedelta(days=7))
        return queryset


class WorklistItemForm(forms.ModelForm):
    class Meta:
        model = WorklistItem
        fields = ("outcome", "note")
        widgets = {"note": forms.TextInput(attrs={"size": 10})}


@admin.register(WorklistItem)
class WorklistItemAdmin(ScopedAdmin):
    """A leader sees his own communities' items, an operator his tiers' (the queryset, not the menu, decides)."""

    member_path = "member"
    form = WorklistItemForm
    change_list_template = "admin/campaigns/worklistitem/change_list.html"
    list_display = ("priority_mark", "member_name", "reason", "script", "outcome", "note")
    list_display_links = ("member_name",)
    list_editable = ("outcome", "note")
    list_filter = (WorklistDayFilter, "kind", "outcome")
    list_select_related = ("member", "leader")
    readonly_fields = ("day", "leader", "community", "member_name", "mobile", "kind", "priority", "reason", "script", "outcome_at")
    fields = ("day", "leader", "community", "member_name", "mobile", "kind", "reason", "script", "outcome", "note", "outcome_at")
    actions = ("mark_contacted", "mark_no_answer", "mark_ordered", "mark_declined")
    ordering = ("-day", "-priority", "id")

    def get_list_filter(self, request):
        if sees_many_members(request.user):
            return (*self.list_filter, "leader")
        return self.list_filter

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="", ordering="priority")
    def priority_mark(self, obj: WorklistItem) -> str:
        return "★★★" if obj.priority >= 80 else "★★" if obj.priority >= 60 else "★"

    @admin.display(description=_("member"), ordering="member__name")
    def member_name(self, obj: WorklistItem) -> str:
        return obj.member.name or obj.member.external_id

    @admin.display(description=_("mobile"))
    def mobile(self, obj: WorklistItem) -> str:
        return mask_mobile(obj.member.mobile)

    def save_model(self, request, obj, form, change) -> None:
        if "outcome" in form.changed_data:
            obj.outcome_at = timezone.now() if obj.outcome else None
        super().save_model(request, obj, form, change)

    def _mark(self, request, queryset, outcome: str) -> None:
        count = queryset.update(outcome=outcome, outcome_at=timezone.now())
        self.message_user(request, _("%(n)d items marked “%(outcome)s”.") % {"n": count, "outcome": WorklistOutcome(outcome).label})

    @admin.action(description=_("Mark: contacted"), permissions=["change"])
    def mark_contacted(self, request, queryset):
        self._mark(request, queryset, WorklistOutcome.CONTACTED)

    @admin.action(description=_("Mark: no answer"), permissions=["change"])
    def mark_no_answer(self, request, queryset):
        self._mark(request, queryset, WorklistOutcome.NO_ANSWER)

    @admin.action(description=_("Mark: ordered"), permissions=["change"])
    def mark_ordered(self, request, queryset):
        self._mark(request, queryset, WorklistOutcome.ORDERED)

    @admin.action(description=_("Mark: not interested"), permissions=["change"])
    def mark_declined(self, request, queryset):
        self._mark(request, queryset, WorklistOutcome.NOT_INTERESTED)

    def changelist_view(self, request, extra_context=None):
        leaders = None if sees_many_members(request.user) else GroupLeader.objects.filter(user=request.user)
        extra = {"follow_up": follow_up_rates(leaders), "follow_up_days": 30}
        return super().changelist_view(request, {**(extra_context or {}), **extra})


@admin.register(WorklistRule)
class WorklistRuleAdmin(admin.ModelAdmin):
    list_display = ("kind", "active", "priority", "script")
    list_editable = ("active", "priority")

    def has_add_permission(self, request) -> bool:
        return False  # one rule per kind, shipped by the migration

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WorklistSettings)
class WorklistSettingsAdmin(SingletonAdmin):
    fields = ("vip_tier", "dormant_circle", "new_member_from_days", "new_member_to_days", "per_leader")
