"""The loyalty programme in the admin: the rights catalogue, earning rules and
multipliers, points settings, the two ledgers (read only), balances (with the
members whose points are negative), redemptions and manual adjustments."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from crm.admin_base import BigTableAdmin, ReadOnlyAdmin, SingletonAdmin
from loyalty import services
from loyalty.models import (
    Adjustment,
    Balance,
    EarningRule,
    GrowthEntry,
    Ledger,
    LoyaltySettings,
    PointsEntry,
    Redemption,
    Right,
    SettleRun,
    TierPoints,
)


@admin.register(Right)
class RightAdmin(admin.ModelAdmin):
    list_display = ("name", "tier", "kind", "monthly_quota", "points_cost", "coupon_terms", "active", "position")
    list_display_links = ("name",)
    list_editable = ("active", "position")
    list_filter = ("tier", "kind", "active")
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("tier", "name", "kind", "description", "monthly_quota", "points_cost", "position", "active")}),
        (_("Coupon (for a coupon right)"), {"fields": ("coupon_value", "coupon_threshold", "coupon_days")}),
    )

    @admin.display(description=_("coupon"))
    def coupon_terms(self, right: Right) -> str:
        if right.coupon_value is None:
            return "-"
        if right.coupon_threshold:
            return f"满{right.coupon_threshold:g}减{right.coupon_value:g}"
        return f"¥{right.coupon_value:g}"


@admin.register(EarningRule)
class EarningRuleAdmin(admin.ModelAdmin):
    list_display = ("code", "amount", "effective_from", "effective_until", "note")
    list_filter = ("code",)
    change_list_template = "admin/loyalty/earningrule/change_list.html"

    def get_urls(self):
        return [
            path("reprice/", self.admin_site.admin_view(self.reprice_view), name="loyalty_earningrule_reprice"),
            *super().get_urls(),
        ]

    def reprice_view(self, request):
        """The explicit re-award: a preview of how many members and points it moves, then a confirmation."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            run = services.ledgers_reprice()
            messages.success(request, _("Re-awarded under today's rules: %(entries)s entries for %(members)s members.") % {
                "entries": run.entries, "members": run.members})
            return HttpResponseRedirect(reverse("admin:loyalty_earningrule_changelist"))
        preview = services.reprice_preview()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Re-award past orders and events under today's rules"),
            "preview": [(Ledger(ledger).label, moves) for ledger, moves in preview.items()],
            "moves": any(moves.entries for moves in preview.values()),
        }
        return TemplateResponse(request, "admin/loyalty/earningrule/reprice.html", context)


@admin.register(TierPoints)
class TierPointsAdmin(admin.ModelAdmin):
    """One row per tier (a tier added later gets its row here; without one it earns ×1.0)."""

    list_display = ("tier", "multiplier")
    list_editable = ("multiplier",)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LoyaltySettings)
class LoyaltySettingsAdmin(SingletonAdmin):
    pass


class LedgerAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("occurred_at", "member", "rule", "amount", "source_kind", "source_id", "seq", "recorded_at")
    list_filter = ("rule", "source_kind")
    list_select_related = ("member",)
    search_fields = ("member__external_id__exact",)
    raw_id_fields = ("member",)
    ordering = ("-id",)


@admin.register(GrowthEntry)
class GrowthEntryAdmin(LedgerAdmin):
    pass


@admin.register(PointsEntry)
class PointsEntryAdmin(LedgerAdmin):
    list_display = (*LedgerAdmin.list_display[:4], "available_at", "expires_at", "source_kind", "source_id", "seq")


class NegativeFilter(admin.SimpleListFilter):
    title = _("points balance")
    parameter_name = "negative"

    def lookups(self, request, model_admin):
        return [("1", _("negative: redemption blocked"))]

    def queryset(self, request, queryset):
        return queryset.filter(points__lt=0) if self.value() == "1" else queryset


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("member", "growth", "available_points", "pending", "expiring", "points", "computed_at")
    list_filter = (NegativeFilter,)
    list_select_related = ("member",)
    search_fields = ("member__external_id__exact",)
    ordering = ("-growth",)

    @admin.display(description=_("points available"))
    def available_points(self, balance: Balance) -> int:
        return balance.available


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("created_at", "member", "right", "points", "coupon", "created_by")
    list_filter = ("right",)
    list_select_related = ("member", "right", "created_by")
    search_fields = ("member__external_id__exact", "key__exact")

    @admin.display(description=_("coupon"))
    def coupon(self, redemption: Redemption) -> str:
        """The coupon a coupon right gave, as a link to its page (campaigns keeps coupons: named
        by its URL, not imported, as the apps' direction wants)."""
        if redemption.coupon_id is None:
            return "-"
        try:
            url = reverse("admin:campaigns_coupon_change", args=[redemption.coupon_id])
        except NoReverseMatch:
            return str(redemption.coupon_id)
        return format_html('<a href="{}">{}</a>', url, _("coupon #%(id)s") % {"id": redemption.coupon_id})


class AdjustmentForm(forms.ModelForm):
    class Meta:
        model = Adjustment
        fields = ("member", "ledger", "amount", "reason")

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if not amount:
            raise forms.ValidationError(_("An adjustment needs an amount other than zero."))
        return amount


@admin.register(Adjustment)
class AdjustmentAdmin(BigTableAdmin):
    """Added, never changed: an adjustment is a ledger entry; a wrong one is corrected by another."""

    member_path = "member"
    form = AdjustmentForm
    list_display = ("created_at", "member", "ledger", "amount", "reason", "created_by")
    list_filter = ("ledger",)
    list_select_related = ("member", "created_by")
    raw_id_fields = ("member",)
    search_fields = ("member__external_id__exact",)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: Adjustment, form, change: bool) -> None:
        adjustment = services.adjustment_create(
            member=obj.member, ledger=obj.ledger, amount=obj.amount, reason=obj.reason, user=request.user
        )
        obj.pk, obj.created_at, obj.created_by = adjustment.pk, adjustment.created_at, adjustment.created_by


@admin.register(SettleRun)
class SettleRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "scope", "members", "entries", "finished_at")
