"""The ladder, circles, tier history, pins, the review queue, group moves and
the recompute runs in the admin. Actions call segments.services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from crm.admin_base import BigTableAdmin, ReadOnlyAdmin, ScopedAdmin, SingletonAdmin
from crm.audit import audit_record
from crm.models import AuditAction, Member
from crm.replica import stale_ok
from segments import services
from segments.circles import RulesError, rules_describe, rules_from_cleaned
from segments.forms import RULE_PREFIX, CircleForm, TierForm, candidate_ladder
from segments.ladder import LadderError
from segments.models import (
    ChangeReason,
    ChurnFit,
    Circle,
    GroupMove,
    GroupMoveStatus,
    MemberMetrics,
    RecomputeRun,
    ReviewStatus,
    RunStatus,
    SegmentSettings,
    Tier,
    TierChange,
    TierPin,
    TierReview,
)
from segments.tasks import recompute_all_task


def _rules_edited(request, obj, what: str) -> None:
    audit_record(actor=request.user, action=AuditAction.RULES, summary=f"{what}: {obj}", obj=obj, request=request)


def recompute_everyone(request) -> RecomputeRun:
    run = RecomputeRun.objects.create(as_of=timezone.localdate(), reason=ChangeReason.MANUAL, full=True, requested_by=request.user)
    recompute_all_task.delay_on_commit(run.pk)
    return run


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    form = TierForm
    list_display = ("code", "name", "rank", "conditions", "members", "community", "is_catch_all")
    list_display_links = ("code", "name")
    ordering = ("-rank",)
    autocomplete_fields = ("community",)
    filter_horizontal = ("operators",)
    change_form_template = "admin/segments/tier/change_form.html"
    fieldsets = (
        (None, {"fields": ("code", "name", "rank", "is_catch_all", "community", "operators", "playbook")}),
        (_("Conditions (all must hold)"), {"fields": ("max_recency_days", ("orders_comparison", "orders_365"), ("spend_comparison", "spend_365"))}),
    )

    def changelist_view(self, request, extra_context=None):
        counts = dict(MemberMetrics.objects.values_list("tier").annotate(members=Count("pk")).order_by())
        self._counts = counts
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("members"))
    def members(self, tier: Tier) -> str:
        count = getattr(self, "_counts", {}).get(tier.pk, 0)
        url = reverse("admin:crm_member_changelist") + f"?tier={tier.pk}"
        return format_html('<a href="{}">{}</a>', url, f"{count:,}")

    @admin.display(description=_("conditions"))
    def conditions(self, tier: Tier) -> str:
        if tier.is_catch_all:
            return _("everyone else")
        parts = []
        if tier.max_recency_days is not None:
            parts.append(f"R ≤ {tier.max_recency_days}")
        if tier.orders_365 is not None:
            parts.append(f"F {tier.get_orders_comparison_display()} {tier.orders_365}")
        if tier.spend_365 is not None:
            parts.append(f"M {tier.get_spend_comparison_display()} ¥{tier.spend_365:,.2f}")
        return ", ".join(parts)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="segments_tier_preview"),
            path("<int:tier_id>/preview/", view(self.preview_view), name="segments_tier_preview"),
            *super().get_urls(),
        ]

    @stale_ok
    def preview_view(self, request, tier_id: int | None = None):
        """How many members the edited tier would move, before saving (JSON for the change form)."""
        tier = get_object_or_404(Tier, pk=tier_id) if tier_id else None
        if not (self.has_change_permission(request, tier) if tier else self.has_add_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return JsonResponse({"error": str(_("Use the button on the form."))}, status=405)
        form = TierForm(request.POST, instance=tier)
        if not form.is_valid():
            return JsonResponse({"errors": {field: [str(e) for e in errors] for field, errors in form.errors.items()}}, status=400)
        candidate = form.instance_with(form.cleaned_data)
        try:
            ladder = candidate_ladder(candidate)
        except LadderError as error:
            return JsonResponse({"errors": {"__all__": [str(error)]}}, status=400)
        names = {rung.id: f"{rung.code} {rung.name}" for rung in ladder}
        names.update({t.pk: str(t) for t in Tier.objects.all() if t.pk not in names})
        moves = services.ladder_preview(ladder)
        return JsonResponse(
            {
                "moved": sum(count for _from, _to, count in moves),
                "moves": [
                    {"from": names.get(current, str(_("none"))), "to": names.get(new, "?"), "members": count}
                    for current, new, count in moves
                ],
            }
        )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        _rules_edited(request, obj, "tier")

    def response_post_save_change(self, request, obj):
        run = recompute_everyone(request)
        messages.info(request, _("Everyone is being placed on the new ladder in the background (run %(run)s).") % {"run": run.pk})
        return super().response_post_save_change(request, obj)

    def response_post_save_add(self, request, obj):
        recompute_everyone(request)
        return super().response_post_save_add(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        # A tier with history is kept (TierChange protects it); deleting one would rewrite the past.
        return super().has_delete_permission(request, obj) and (obj is None or not TierChange.objects.filter(to_tier=obj).exists())


@admin.register(Circle)
class CircleAdmin(admin.ModelAdmin):
    form = CircleForm
    list_display = ("name", "kind", "members", "share", "usual_share", "rules_summary", "active")
    list_filter = ("kind", "active")
    search_fields = ("name",)
    readonly_fields = ("member_count", "counted_at")
    change_form_template = "admin/segments/circle/change_form.html"
    actions = ("recount",)

    def get_fieldsets(self, request, obj=None):
        rules = [name for name in CircleForm.base_fields if name.startswith(RULE_PREFIX)]
        return (
            (None, {"fields": ("name", "kind", "active", "usual_share", "description", "member_count", "counted_at")}),
            (_("Rules (a member is in the circle when every rule that is set holds)"), {"fields": rules}),
        )

    def changelist_view(self, request, extra_context=None):
        self._total = Member.objects.filter(erased_at__isnull=True).count()
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("members"), ordering="member_count")
    def members(self, circle: Circle) -> str:
        url = reverse("admin:crm_member_changelist") + f"?circle={circle.pk}"
        return format_html('<a href="{}">{}</a>', url, f"{circle.member_count:,}")

    @admin.display(description=_("share now (%)"))
    def share(self, circle: Circle) -> str:
        total = getattr(self, "_total", 0)
        return f"{100 * circle.member_count / total:.1f}" if total else "-"

    @admin.display(description=_("rules"))
    def rules_summary(self, circle: Circle) -> str:
        return rules_describe(circle.rules)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="segments_circle_preview"),
            path("<int:circle_id>/preview/", view(self.preview_view), name="segments_circle_preview"),
            *super().get_urls(),
        ]

    @stale_ok
    def preview_view(self, request, circle_id: int | None = None):
        """The live count of the rules on the form, before saving (JSON)."""
        circle = get_object_or_404(Circle, pk=circle_id) if circle_id else None
        if not (self.has_change_permission(request, circle) if circle else self.has_add_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return JsonResponse({"error": str(_("Use the button on the form."))}, status=405)
        form = CircleForm(request.POST, instance=circle)
        filterset = form.rules_filterset()
        if not filterset.form.is_valid():
            errors = {RULE_PREFIX + name: [str(e) for e in errs] for name, errs in filterset.form.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        rules = rules_from_cleaned(filterset.form.cleaned_data)
        try:
            estimate = services.circle_estimate(rules)
            if estimate is not None:
                note = _("estimated from a %(percent)s%% sample; saving counts exactly") % {"percent": estimate.sampled_percent}
                return JsonResponse({"members": estimate.members, "share": estimate.share, "estimated": True, "note": note})
            count = services.circle_count(rules)
        except RulesError as error:
            return JsonResponse({"errors": error.errors}, status=400)
        total = Member.objects.filter(erased_at__isnull=True).count()
        return JsonResponse({"members": count, "share": round(100 * count / total, 1) if total else 0, "estimated": False})

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        _rules_edited(request, obj, "circle")
        count = services.circle_materialise(obj)
        messages.info(request, _("The circle now holds %(count)s members.") % {"count": f"{count:,}"})

    @admin.action(description=_("Count the selected circles' members again"), permissions=["change"])
    def recount(self, request, queryset: QuerySet) -> None:
        for circle in queryset:
            services.circle_materialise(circle)
        messages.success(request, _("Recounted %(n)s circles.") % {"n": queryset.count()})


class MemberLinkMixin:
    @admin.display(description=_("member"), ordering="member_id")
    def member_link(self, obj) -> str:
        url = reverse("admin:crm_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member.external_id)


@admin.register(TierChange)
class TierChangeAdmin(MemberLinkMixin, ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("at", "member_link", "from_tier", "to_tier", "reason", "run")
    list_filter = ("reason", "to_tier", "from_tier")
    list_select_related = ("member", "from_tier", "to_tier", "run")
    raw_id_fields = ("member",)
    ordering = ("-at", "-id")
    search_fields = ("member__external_id__exact",)
    search_help_text = _("Member ID (exact).")


@admin.register(TierPin)
class TierPinAdmin(MemberLinkMixin, ScopedAdmin):
    member_path = "member"
    list_display = ("member_link", "tier", "starts_on", "ends_on", "reason", "created_by", "in_force")
    list_select_related = ("member", "tier", "created_by")
    autocomplete_fields = ("member",)
    fields = ("member", "tier", "starts_on", "ends_on", "reason")
    actions = ("release",)

    @admin.display(description=_("in force"), boolean=True)
    def in_force(self, pin: TierPin) -> bool:
        today = timezone.localdate()
        return pin.released_at is None and pin.starts_on <= today <= pin.ends_on

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        pin = services.tier_pin(
            member=obj.member, tier=obj.tier, ends_on=obj.ends_on, reason=obj.reason, user=request.user, starts_on=obj.starts_on
        )
        obj.pk = pin.pk

    @admin.action(description=_("Release the selected pins now"), permissions=["change"])
    def release(self, request, queryset: QuerySet) -> None:
        pins = list(queryset.filter(released_at=None).select_related("member", "tier"))
        for pin in pins:
            services.tier_pin_release(pin=pin, user=request.user)
        messages.success(request, _("Released %(n)s pins.") % {"n": len(pins)})


@admin.register(TierReview)
class TierReviewAdmin(MemberLinkMixin, ReadOnlyAdmin, ScopedAdmin):
    member_path = "member"
    list_display = ("created_at", "member_link", "from_tier", "to_tier", "largest_order", "usual_order", "status", "decided_by")
    list_filter = ("status", "to_tier")
    list_select_related = ("member", "from_tier", "to_tier", "decided_by")
    actions = ("approve", "reject")

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("segments.change_tierreview")

    @admin.action(description=_("Approve: promote now"), permissions=["review"])
    def approve(self, request, queryset: QuerySet) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description=_("Reject: the order does not count towards a tier"), permissions=["review"])
    def reject(self, request, queryset: QuerySet) -> None:
        self._decide(request, queryset, approve=False)

    def _decide(self, request, queryset: QuerySet, *, approve: bool) -> None:
        reviews = list(queryset.filter(status=ReviewStatus.PENDING).select_related("member", "to_tier"))
        for review in reviews:
            services.tier_review_decide(review=review, approve=approve, user=request.user)
        messages.success(request, _("Decided %(n)s reviews.") % {"n": len(reviews)})


@admin.register(GroupMove)
class GroupMoveAdmin(MemberLinkMixin, ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("created_at", "member_link", "tier_move", "from_community", "to_community", "status", "done_by")
    list_filter = ("status",)
    list_select_related = ("member", "change__from_tier", "change__to_tier", "from_community", "to_community", "done_by")
    ordering = ("-created_at",)
    actions = ("mark_done", "dismiss")

    @admin.display(description=_("tier change"))
    def tier_move(self, move: GroupMove) -> str:
        return f"{move.change.from_tier} → {move.change.to_tier}"

    def has_done_permission(self, request) -> bool:
        return request.user.has_perm("segments.change_groupmove")

    @admin.action(description=_("Mark done (invited to the new group, removed from the old)"), permissions=["done"])
    def mark_done(self, request, queryset: QuerySet) -> None:
        count = services.group_move_done(moves=queryset, user=request.user)
        messages.success(request, _("%(n)s group moves done.") % {"n": count})

    @admin.action(description=_("Dismiss (no move needed)"), permissions=["done"])
    def dismiss(self, request, queryset: QuerySet) -> None:
        count = services.group_move_done(moves=queryset, user=request.user, status=GroupMoveStatus.DISMISSED)
        messages.success(request, _("%(n)s group moves dismissed.") % {"n": count})


@admin.register(RecomputeRun)
class RecomputeRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "as_of", "reason", "full", "status", "members", "tier_changes", "reviews", "duration")
    list_filter = ("status", "reason", "full")
    change_list_template = "admin/segments/recomputerun/change_list.html"
    change_form_template = "admin/segments/recomputerun/change_form.html"
    readonly_fields = ("progress",)

    @admin.display(description=_("duration (s)"))
    def duration(self, run: RecomputeRun) -> str:
        if not run.finished_at:
            return "-"
        return f"{(run.finished_at - run.started_at).total_seconds():.1f}"

    @admin.display(description=_("progress"))
    def progress(self, run: RecomputeRun) -> str:
        if run.status != RunStatus.RUNNING:
            return run.get_status_display()
        state = services.run_progress(run.pk)
        if not state:
            return _("Waiting for a worker…")
        return _("Step %(done)s of %(of)s: %(stage)s") % state

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("start/", view(require_POST(self.start_view)), name="segments_recomputerun_start"), *super().get_urls()]

    def start_view(self, request):
        if not request.user.has_perm("segments.add_recomputerun"):
            raise PermissionDenied
        run = recompute_everyone(request)
        messages.success(request, _("Recompute of everyone started; this page follows it."))
        return HttpResponseRedirect(reverse("admin:segments_recomputerun_change", args=[run.pk]))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_start": request.user.has_perm("segments.add_recomputerun")}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "running": bool(run and run.status == RunStatus.RUNNING)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(SegmentSettings)
class SegmentSettingsAdmin(SingletonAdmin):
    fieldsets = (
        (_("Review queue"), {"fields": ("review_multiple", "review_min_amount")}),
        (_("Churn risk"), {"fields": ("churn_model", "churn_time_unit", "churn_min_members", "risk_high_below", "risk_medium_below")}),
        (_("Trend and V score"), {"fields": ("trend_ratio", "v_weight_share", "v_weight_invite", "v_weight_group_message", "v_weight_group_buy")}),
    )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        _rules_edited(request, obj, "settings")


@admin.register(ChurnFit)
class ChurnFitAdmin(ReadOnlyAdmin):
    list_display = ("fitted_at", "as_of", "model", "time_unit", "n_members", "r", "alpha", "a", "b", "log_likelihood")
    list_filter = ("model", "time_unit")
