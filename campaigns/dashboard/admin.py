"""The dashboard's admin: the admin home shows it (admin/crm_index.html), the
snapshots are readable rows, the traffic lights and settings are editable."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from campaigns.dashboard import history
from campaigns.dashboard.home import leader_board
from campaigns.dashboard.kpi import snapshot_build
from campaigns.dashboard.models import KpiSettings, KpiSnapshot, KpiThreshold
from crm.admin_base import ReadOnlyAdmin, SingletonAdmin
from crm.audit import audit_record
from crm.models import AuditAction
from crm.replica import stale_ok
from segments.history import RebuildError, rebuild_range

admin.site.index_template = "admin/crm_index.html"


class HistoryRebuildForm(forms.Form):
    start = forms.DateField(label=_("from"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("to"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                          help_text=_("Empty: the day before the recorded tier history (or yesterday)."))
    step = forms.ChoiceField(label=_("granularity"), choices=[("day", _("day")), ("week", _("week")), ("month", _("month"))], initial="week",
                             help_text=_("A year at weekly steps takes a few minutes on a million members."))

    def clean(self):
        data = super().clean()
        if "start" in data and "end" in data:
            try:
                rebuild_range(data["start"], data["end"])
            except RebuildError as error:
                raise forms.ValidationError(str(error)) from error
        return data


@admin.register(KpiSnapshot)
class KpiSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("day", "kind", "label", "key", "computed_at")
    list_filter = ("kind", "day")
    date_hierarchy = "day"

    def get_queryset(self, request):
        """Leaders' rows and the rest are for those who see the whole base; a leader reads his line on the home page."""
        from crm.scoping import sees_many_members

        queryset = super().get_queryset(request)
        return queryset if sees_many_members(request.user) else queryset.none()

    def get_urls(self):
        return [
            path("build/", self.admin_site.admin_view(require_POST(self.build_view)), name="campaigns_kpisnapshot_build"),
            path("leaders/", self.admin_site.admin_view(self.leaders_view), name="campaigns_kpisnapshot_leaders"),
            path("rebuild/", self.admin_site.admin_view(self.rebuild_view), name="campaigns_kpisnapshot_rebuild"),
            path("rebuild/progress/", self.admin_site.admin_view(self.rebuild_progress_view), name="campaigns_kpisnapshot_rebuild_progress"),
            *super().get_urls(),
        ]

    @stale_ok
    def leaders_view(self, request):
        """The whole leaders' board of the latest snapshot (a leader: his own line)."""
        if not request.user.has_perm("campaigns.view_kpisnapshot"):
            raise PermissionDenied
        latest = KpiSnapshot.objects.filter(kind="base").order_by("-day").values_list("day", flat=True).first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Group leaders"),
            "day": latest,
            "leaders": leader_board(latest, request.user) if latest else [],
        }
        return TemplateResponse(request, "admin/campaigns/leader_board.html", context)

    def rebuild_view(self, request):
        """History from the orders: a form (suggested from the orders and the recorded
        history), then a worker rebuilds; the page follows it with a progress bar."""
        if not request.user.has_perm("campaigns.add_kpisnapshot"):
            raise PermissionDenied
        from campaigns.dashboard.tasks import history_rebuild_task

        offer = history.suggestion()
        form = HistoryRebuildForm(request.POST or None, initial=offer or {"step": "week"})
        if request.method == "POST" and not history.is_running() and form.is_valid():
            start, end, step = form.cleaned_data["start"], form.cleaned_data["end"], form.cleaned_data["step"]
            history.state_set(status="queued", done=0, of=0, message="", result=None)
            audit_record(actor=request.user, action=AuditAction.TIER, summary=f"tier history rebuilt from the orders from {start} ({step})", request=request)
            history_rebuild_task.delay(start.isoformat(), end.isoformat() if end else None, step)
            messages.success(request, _("The history is being rebuilt by a worker; this page follows it."))
            return HttpResponseRedirect(reverse("admin:campaigns_kpisnapshot_rebuild"))
        state = history.state()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("History from the orders"),
            "form": form,
            "offer": offer,
            "state": state,
            "running": history.is_running(),
            "fraction": (state["done"] / state["of"]) if state and state.get("of") else 0,
        }
        return TemplateResponse(request, "admin/campaigns/history_rebuild.html", context)

    def rebuild_progress_view(self, request):
        if not request.user.has_perm("campaigns.add_kpisnapshot"):
            raise PermissionDenied
        state = history.state() or {}
        of = state.get("of") or 0
        return JsonResponse({"running": history.is_running(), "fraction": (state.get("done", 0) / of) if of else 0, "rows": state.get("done", 0)})

    def build_view(self, request):
        if not request.user.has_perm("campaigns.add_kpisnapshot"):
            raise PermissionDenied
        figures = snapshot_build()
        audit_record(actor=request.user, action=AuditAction.CAMPAIGN, summary=f"dashboard recomputed for {figures['day']}", request=request)
        messages.success(request, _("The figures of today are computed."))
        return HttpResponseRedirect(reverse("admin:index"))


@admin.register(KpiThreshold)
class KpiThresholdAdmin(admin.ModelAdmin):
    list_display = ("indicator", "higher_is_better", "green", "yellow")
    list_editable = ("higher_is_better", "green", "yellow")

    def has_add_permission(self, request) -> bool:
        return False  # one per indicator, shipped by the migration

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(KpiSettings)
class KpiSettingsAdmin(SingletonAdmin):
    fields = ("message_cost", "not_contacted_days")
