"""Journeys (with their steps and report) and enrolments. Views stay thin:
they call campaigns.journeys.services and campaigns.reports."""

from __future__ import annotations


from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns import reports
from campaigns.models import SkipReason
from campaigns.journeys.models import Enrolment, EnrolmentStatus, ExitReason, Journey, JourneyStep
from crm.admin_base import BigTableAdmin, ReadOnlyAdmin
from crm.audit import audit_record
from crm.models import AuditAction
from crm.replica import stale_ok

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

    @stale_ok
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
