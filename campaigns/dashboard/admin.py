"""The dashboard's admin: the admin home shows it (admin/crm_index.html), the
snapshots are readable rows, the traffic lights and settings are editable."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from campaigns.dashboard.home import leader_board
from campaigns.dashboard.kpi import snapshot_build
from campaigns.dashboard.models import KpiSettings, KpiSnapshot, KpiThreshold
from crm.admin_base import ReadOnlyAdmin, SingletonAdmin
from crm.audit import audit_record
from crm.models import AuditAction

admin.site.index_template = "admin/crm_index.html"


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
            *super().get_urls(),
        ]

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
