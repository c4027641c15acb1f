"""Journeys (with their steps and report), enrolments, the group leader's
worklist with its rules and settings, and the product page's "notify past
buyers". Views stay thin: they call campaigns.journeys, .worklist and .reports."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns import reports
from campaigns.models import (
    Campaign,
    Enrolment,
    EnrolmentStatus,
    ExitReason,
    Journey,
    JourneyStep,
    MessageTemplate,
    SkipReason,
    Variant,
    WorklistItem,
    WorklistOutcome,
    WorklistRule,
    WorklistSettings,
)
from campaigns.worklist import follow_up_rates
from crm.admin_base import BigTableAdmin, ReadOnlyAdmin, ScopedAdmin, SingletonAdmin
from crm.audit import audit_record
from crm.masking import mask_mobile
from crm.models import AuditAction, GroupLeader, Product
from crm.scoping import sees_many_members

RESTOCK_TEMPLATE = "补货提醒"


class JourneyStepInline(admin.TabularInline):
    model = JourneyStep
    extra = 0
    min_num = 1
    fields = ("day", "template", "coupon_kind", "coupon_value", "coupon_threshold", "coupon_percent", "coupon_category", "coupon_days")
    autocomplete_fields = ("coupon_category",)


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    inlines = [JourneyStepInline]
    list_display = ("name", "trigger", "active", "priority", "step_days", "in_journey", "report_link")
    list_filter = ("active", "trigger")
    readonly_fields = ("report_link",)
    fieldsets = (
        (None, {"fields": ("name", "active", "description", "report_link")}),
        (_("Start"), {"fields": ("trigger", "trigger_days", "trigger_circle", "catch_up_days")}),
        (_("End"), {"fields": ("exit_on_order", "exit_on_consent", "exit_on_tier_left", "priority")}),
        (_("Measure"), {"fields": ("control_share", "conversion_days")}),
    )

    def get_queryset(self, request):
        active = Count("enrolments", filter=Q(enrolments__status=EnrolmentStatus.ACTIVE))
        return super().get_queryset(request).annotate(active_n=active).prefetch_related("steps")

    @admin.display(description=_("steps"))
    def step_days(self, obj: Journey) -> str:
        return " → ".join(f"D{step.day}" for step in obj.steps.all()) or "—"

    @admin.display(description=_("in the journey now"), ordering="active_n")
    def in_journey(self, obj: Journey) -> int:
        return obj.active_n

    @admin.display(description=_("report"))
    def report_link(self, obj: Journey | None) -> str:
        if obj is None or not obj.pk:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:campaigns_journey_report", args=[obj.pk]), _("Journey report"))

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user, action=AuditAction.CAMPAIGN, summary=f"journey {'changed' if change else 'created'}: {obj.name}",
            obj=obj, detail={"fields": form.changed_data}, request=request,
        )

    def save_related(self, request, form, formsets, change) -> None:
        """Steps keep their campaigns in step (JourneyStep.save), also when only the journey changed."""
        super().save_related(request, form, formsets, change)
        for step in form.instance.steps.select_related("journey", "template"):
            step.save()

    def get_urls(self):
        return [
            path("<int:journey_id>/report/", self.admin_site.admin_view(self.report_view), name="campaigns_journey_report"),
            *super().get_urls(),
        ]

    def report_view(self, request, journey_id: int):
        journey = get_object_or_404(self.get_queryset(request), pk=journey_id)
        if not self.has_view_permission(request, journey):
            raise PermissionDenied
        enrolments = Enrolment.objects.filter(journey=journey)
        statuses = dict(enrolments.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        exits = dict(
            enrolments.filter(status=EnrolmentStatus.EXITED).values_list("exit_reason").annotate(n=Count("id")).values_list("exit_reason", "n")
        )
        steps = [
            {"step": step, "report": reports.campaign_report(step.campaign)}
            for step in journey.steps.select_related("campaign", "template").order_by("day")
            if step.campaign_id
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "journey": journey,
            "enrolled": sum(statuses.values()),
            "statuses": [(label, statuses.get(code, 0)) for code, label in EnrolmentStatus.choices],
            "exits": [(label, exits.get(code, 0)) for code, label in ExitReason.choices],
            "control": enrolments.filter(is_control=True).count(),
            "steps": steps,
            "reasons": SkipReason.choices,
            "title": _("Journey report: %(name)s") % {"name": journey.name},
        }
        return TemplateResponse(request, "admin/campaigns/journey/report.html", context)


@admin.register(Enrolment)
class EnrolmentAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("member", "journey", "status", "next_step", "started_at", "enrolled_at", "exit_reason", "ended_at", "is_control")
    list_filter = ("journey", "status", "exit_reason", "is_control")
    list_select_related = ("member", "journey", "next_step")
    raw_id_fields = ("member",)
    search_fields = ("member__external_id__exact",)
    search_help_text = _("The exact member ID.")
    ordering = ("-id",)


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


# The product page: "notify past buyers" starts a draft restock reminder that
# goes through the usual approval, dry run and outbox.
@admin.action(description=_("Notify past buyers (restock or offer)"), permissions=["view"])
def notify_past_buyers(modeladmin, request, queryset):
    if not request.user.has_perm("campaigns.add_campaign"):
        modeladmin.message_user(request, _("You may not create campaigns."), messages.ERROR)
        return None
    products = list(queryset[:2])
    if len(products) != 1:
        modeladmin.message_user(request, _("Choose exactly one product."), messages.WARNING)
        return None
    product = products[0]
    template = MessageTemplate.objects.filter(name=RESTOCK_TEMPLATE).first() or MessageTemplate.objects.filter(body__contains="{{ product }}").first()
    if template is None:
        modeladmin.message_user(request, _("Create a message template that uses {{ product }} first."), messages.ERROR)
        return None
    stamp = timezone.localtime().strftime("%m%d %H:%M")
    campaign = Campaign.objects.create(
        name=f"{product.name} 补货提醒 {stamp}"[:100], channel=template.channel, purpose=template.purpose,
        target_product=product, created_by=request.user,
    )
    Variant.objects.create(campaign=campaign, label="A", template=template, share=100)
    audit_record(actor=request.user, action=AuditAction.CAMPAIGN, summary=f"restock reminder drafted: {campaign.name}", obj=campaign, request=request)
    modeladmin.message_user(
        request, _("Draft ready: members who bought %(product)s in the last %(days)d days. Check the dry run, then submit it for approval.")
        % {"product": product.name, "days": campaign.target_product_days},
    )
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))


product_admin = admin.site.get_model_admin(Product)
product_admin.actions = (*(product_admin.actions or ()), notify_past_buyers)
