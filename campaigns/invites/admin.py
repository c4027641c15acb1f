"""The invite rewards: the program's settings, and every reward given with its coupon."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns.invites.models import InviteReward, InviteSettings
from campaigns.invites.tasks import invite_rewards_task
from crm.admin_base import BigTableAdmin, ReadOnlyAdmin, SingletonAdmin


@admin.register(InviteSettings)
class InviteSettingsAdmin(SingletonAdmin):
    fields = ("active", "counts_from", "milestones", "coupon_days", "given")
    readonly_fields = ("given",)

    @admin.display(description=_("given so far"))
    def given(self, program: InviteSettings) -> str:
        totals = InviteReward.objects.aggregate(n=Count("id"), value=Sum("value"), used=Count("id", filter=Q(coupon__redeemed_at__isnull=False)))
        if not totals["n"]:
            return _("No reward given yet.")
        text = _("%(n)d rewards, ¥%(value)s in coupons, %(used)d of them used.") % {"n": totals["n"], "value": f"{totals['value']:,.2f}", "used": totals["used"]}
        return format_html('<a href="{}">{}</a>', reverse("admin:campaigns_invitereward_changelist"), text)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if obj.active:
            # Switched on, an earlier first day or a lower milestone: what is now owed is given at once, not at night.
            invite_rewards_task.delay_on_commit(None)
            messages.info(request, _("Members who have now reached a reward get its coupon within a few minutes."))


@admin.register(InviteReward)
class InviteRewardAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("created_at", "member", "friends", "value", "coupon_link", "coupon_state", "reached_at")
    list_filter = ("friends",)
    list_select_related = ("member", "coupon")
    search_fields = ("member__external_id__exact", "coupon__code__exact")
    search_help_text = _("The member's exact ID, or the coupon's exact code.")

    @admin.display(description=_("coupon"))
    def coupon_link(self, reward: InviteReward) -> str:
        if reward.coupon is None:
            return "-"
        url = reverse("admin:campaigns_coupon_change", args=[reward.coupon_id])
        return format_html('<a href="{}">{} {}</a>', url, reward.coupon.describe(), reward.coupon.code)

    @admin.display(description=_("state"))
    def coupon_state(self, reward: InviteReward) -> str:
        return reward.coupon.state() if reward.coupon else "-"
