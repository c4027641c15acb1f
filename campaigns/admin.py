"""The campaigns screens: templates with a live preview for real members,
campaigns with the dry-run funnel, the approval flow and the report, the
outbox (deliveries) with reconciliation, coupons and unsubscribe replies.
Views stay thin: they call campaigns.services, .audience and .reports."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from campaigns import audience, reports, services
from campaigns.models import (
    BannedWord,
    Campaign,
    CampaignStatus,
    Coupon,
    Delivery,
    InboundReply,
    MessageTemplate,
    SalutationRule,
    SendingPolicy,
    SkipReason,
    Variant,
)
from campaigns.rendering import CouponView, contexts_for, message_text
from campaigns.templating import CONTEXT_VARIABLES, compile_template, sms_segments
from crm.admin_base import BigTableAdmin, ReadOnlyAdmin, SingletonAdmin
from crm.audit import audit_record
from crm.masking import mask_mobile
from crm.models import AuditAction, Member
from crm.replica import stale_ok
from crm.scoping import sees_all_members
from segments.models import MemberMetrics, Tier
from segments.scoping import operated_tier_ids

SAMPLE_MEMBERS = 3


def preview_texts(template: MessageTemplate, member_ids: list[int], *, coupon_sample: bool = True, product: str = "") -> list[dict]:
    """The template rendered for these members, with the SMS count."""
    if not member_ids:
        return []
    sample_coupon = CouponView("Q示例券码", timezone.now() + dt.timedelta(days=7), "¥10无门槛券")
    contexts = contexts_for(member_ids, {pk: sample_coupon for pk in member_ids} if coupon_sample else None, product=product)
    body = compile_template(template.body)
    members = {m.pk: m for m in Member.objects.filter(pk__in=member_ids)}
    policy = SendingPolicy.current()
    previews = []
    for pk in member_ids:
        if pk not in contexts:
            continue
        text = message_text(body, contexts[pk], channel=template.channel, purpose=template.purpose, unsubscribe_line=policy.sms_unsubscribe)
        previews.append(
            {"member": members[pk], "text": text, "chars": len(text), "segments": sms_segments(text) if template.channel == "sms" else None}
        )
    return previews


def sample_member_ids(limit: int = SAMPLE_MEMBERS) -> list[int]:
    """Members with a purchase history, so that the preview shows real values."""
    return list(
        MemberMetrics.objects.filter(member__erased_at__isnull=True, orders_365__gt=0)
        .order_by("-spend_365")
        .values_list("member_id", flat=True)[:limit]
    )


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ("name", "channel", "purpose", "subject", "body")
        widgets = {"body": forms.Textarea(attrs={"rows": 5, "cols": 80})}


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ("name", "channel", "purpose", "length_hint", "updated_at")
    list_filter = ("channel", "purpose")
    search_fields = ("name", "body")
    readonly_fields = ("variables", "banned_words", "preview")
    fieldsets = (
        (None, {"fields": ("name", "channel", "purpose", "subject", "body")}),
        (_("What a template may use"), {"fields": ("variables",)}),
        (_("Preview for real members"), {"fields": ("banned_words", "preview")}),
    )

    @admin.display(description=_("length"))
    def length_hint(self, obj: MessageTemplate) -> str:
        return _("%(n)d characters of text") % {"n": len(obj.body)}

    @admin.display(description=_("variables"))
    def variables(self, obj) -> str:
        return format_html(
            "<table class='crm-variables'>{}</table>",
            format_html_join("", "<tr><td><code>{{{{ {} }}}}</code></td><td>{}</td></tr>", ((k, v) for k, v in CONTEXT_VARIABLES.items())),
        )

    @admin.display(description=_("banned words"))
    def banned_words(self, obj: MessageTemplate | None) -> str:
        if obj is None or not obj.pk:
            return "—"
        found = services.banned_words_in(f"{obj.subject}\n{obj.body}")
        if not found:
            return _("none: the template can be approved")
        return format_html("<strong class='crm-bad'>{}</strong>", "、".join(found))

    @admin.display(description=_("preview"))
    def preview(self, obj: MessageTemplate | None) -> str:
        if obj is None or not obj.pk:
            return _("Save the template to preview it for real members.")
        member_ids = sample_member_ids()
        external_id = getattr(obj, "preview_member", "")
        if external_id:
            chosen = Member.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
            member_ids = [chosen] if chosen else []
        previews = preview_texts(obj, member_ids)
        if not previews:
            return _("No member to preview with (member ID not found, or nobody has ordered yet).")
        return format_html(
            "<table class='crm-previews'><tr><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>"
            "<p class='help'>{}</p>",
            _("member"), _("message"), _("length"),
            format_html_join(
                "",
                "<tr><td>{} {}</td><td class='crm-message'>{}</td><td>{}</td></tr>",
                (
                    (
                        p["member"].name, mask_mobile(p["member"].mobile), p["text"],
                        _("%(chars)d characters, %(segments)d SMS") % p if p["segments"] else _("%(chars)d characters") % p,
                    )
                    for p in previews
                ),
            ),
            _("Add ?member=<member ID> to the address to preview for one member. Coupon values here are a sample."),
        )

    def get_object(self, request, object_id, from_field=None):
        """The object of this request carries the member to preview (?member=…): the admin instance is shared."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.preview_member = request.GET.get("member", "").strip()
        return obj

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user, action=AuditAction.CAMPAIGN, summary=f"template {'changed' if change else 'created'}: {obj.name}",
            obj=obj, detail={"fields": form.changed_data}, request=request,
        )


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    min_num = 1
    fields = ("label", "template", "share")

    def has_change_permission(self, request, obj=None) -> bool:
        return (obj is None or obj.editable) and super().has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return (obj is None or obj.editable) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return (obj is None or obj.editable) and super().has_delete_permission(request, obj)


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        exclude = ("status", "created_by", "approved_by", "approved_at", "submitted_at", "last_launched_at", "finished_at")

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("coupon_kind")
        if kind == "percent" and not cleaned.get("coupon_percent"):
            self.add_error("coupon_percent", _("A percentage coupon needs the percent off."))
        if kind in ("amount", "spend_save", "category") and not cleaned.get("coupon_value"):
            self.add_error("coupon_value", _("This coupon needs a value."))
        if kind == "spend_save" and not cleaned.get("coupon_threshold"):
            self.add_error("coupon_threshold", _("Spend X save Y needs the minimum spend."))
        if kind == "category" and not cleaned.get("coupon_category"):
            self.add_error("coupon_category", _("A category coupon needs the category."))
        if cleaned.get("send_at") and cleaned.get("crontab"):
            self.add_error("crontab", _("Choose a time or a repeat, not both."))
        if self.limited_to_own_tiers and not cleaned.get("target_tiers"):
            self.add_error("target_tiers", _("Choose at least one of the tiers you operate."))
        return cleaned

    # Set per request by CampaignAdmin.get_form: an operator's campaign stays within his tiers.
    limited_to_own_tiers = False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    inlines = [VariantInline]
    list_display = ("name", "channel", "status", "targets", "send_at", "last_launched_at", "created_by", "approved_by")
    list_select_related = ("target_product", "created_by", "approved_by")
    list_filter = ("status", "channel", "purpose")
    search_fields = ("name",)
    filter_horizontal = ("target_tiers", "target_circles", "exclude_tiers", "exclude_circles")
    autocomplete_fields = ("target_product",)
    fieldsets = (
        (None, {"fields": ("name", "channel", "purpose")}),
        (
            _("Who"),
            {
                "fields": (
                    "target_tiers", "target_circles", "exclude_tiers", "exclude_circles", "target_product", "target_product_days", "control_share",
                ),
                "description": _(
                    "Members in the chosen tiers; when circles are chosen too, only those also in one of the circles; "
                    "when a product is chosen, only those who bought it within the days. Exclusions are taken out."
                ),
            },
        ),
        (_("Coupon"), {"fields": ("coupon_kind", "coupon_value", "coupon_threshold", "coupon_percent", "coupon_category", "coupon_days")}),
        (_("When"), {"fields": ("send_at", "crontab", "conversion_days")}),
    )

    def get_queryset(self, request):
        """An operator sees the campaigns aimed at his tiers, and his own drafts.
        A journey's steps are campaigns too, shown in their journey's report."""
        queryset = super().get_queryset(request).exclude(status=CampaignStatus.JOURNEY)
        if sees_all_members(request.user):
            return queryset
        mine = Q(target_tiers__in=operated_tier_ids(request.user)) | Q(created_by=request.user)
        return queryset.filter(pk__in=Campaign.objects.filter(mine).values("pk"))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "target_tiers" and not sees_all_members(request.user):
            kwargs["queryset"] = Tier.objects.filter(pk__in=operated_tier_ids(request.user))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.limited_to_own_tiers = not sees_all_members(request.user)
        return form

    @admin.display(description=_("who"))
    def targets(self, obj: Campaign) -> str:
        names = [str(t) for t in obj.target_tiers.all()] + [c.name for c in obj.target_circles.all()]
        if obj.target_product_id:
            names.append(_("buyers of %(product)s") % {"product": obj.target_product.name})
        return "、".join(names) or "—"

    def has_delete_permission(self, request, obj=None) -> bool:
        """Only a draft that never sent anything: a campaign's messages are the record of what members received."""
        if obj is not None and (not obj.editable or obj.deliveries.exists()):
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.editable:
            return [f.name for f in Campaign._meta.fields if f.editable] + ["target_tiers", "target_circles", "exclude_tiers", "exclude_circles"]
        return ()

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:campaign_id>/funnel/", view(self.funnel_view), name="campaigns_campaign_funnel"),
            path("<int:campaign_id>/report/", view(self.report_view), name="campaigns_campaign_report"),
            path("<int:campaign_id>/do/<str:step>/", view(require_POST(self.step_view)), name="campaigns_campaign_step"),
            *super().get_urls(),
        ]

    def _campaign(self, request, campaign_id: int) -> Campaign:
        campaign = get_object_or_404(self.get_queryset(request), pk=campaign_id)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, unquote(object_id))  # None for a malformed or unknown id: the admin's redirect
        extra = {"campaign": campaign, "steps": self._steps(request, campaign) if campaign else []}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _steps(self, request, campaign: Campaign) -> list[tuple[str, str]]:
        user, status = request.user, campaign.status
        can_change = self.has_change_permission(request, campaign)
        can_approve = user.has_perm(services.APPROVE_PERMISSION) and campaign.created_by_id != user.pk
        steps = []
        if status == CampaignStatus.DRAFT and can_change:
            steps.append(("submit", _("Submit for approval")))
        if status == CampaignStatus.AWAITING and can_approve:
            steps += [("approve", _("Approve")), ("reject", _("Send back"))]
        if status == CampaignStatus.SCHEDULED and can_change:
            steps.append(("launch", _("Send now")))
        if status not in (CampaignStatus.DONE, CampaignStatus.CANCELLED) and can_change:
            steps.append(("cancel", _("Cancel campaign")))
        return steps

    def step_view(self, request, campaign_id: int, step: str):
        campaign = self._campaign(request, campaign_id)
        if step not in dict(self._steps(request, campaign)):
            raise PermissionDenied
        try:
            if step == "submit":
                services.campaign_submit(campaign=campaign, user=request.user)
                self.message_user(request, _("Submitted: someone else with the approve right now approves it."), messages.SUCCESS)
            elif step == "approve":
                services.campaign_approve(campaign=campaign, user=request.user)
                self.message_user(request, _("Approved and scheduled."), messages.SUCCESS)
            elif step == "reject":
                services.campaign_reject(campaign=campaign, user=request.user, reason=request.POST.get("reason", ""))
                self.message_user(request, _("Sent back to its author as a draft."), messages.WARNING)
            elif step == "launch":
                created = services.campaign_launch(campaign=campaign, user=request.user, force=True)
                self.message_user(request, _("Launched: %(n)d messages in the outbox.") % {"n": created}, messages.SUCCESS)
            elif step == "cancel":
                stopped = services.campaign_cancel(campaign=campaign, user=request.user)
                self.message_user(request, _("Cancelled; %(n)d queued messages will not be sent.") % {"n": stopped}, messages.WARNING)
        except ValidationError as exc:
            for message in exc.messages:
                self.message_user(request, message, messages.ERROR)
        except PermissionDenied as exc:
            self.message_user(request, str(exc) or _("You may not do this."), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    @stale_ok
    def funnel_view(self, request, campaign_id: int):
        """The dry run: the funnel of counts, and the message as a few real members would get it."""
        campaign = self._campaign(request, campaign_id)
        result = audience.funnel(campaign)
        variants = []
        sample_ids = list(audience.audience(campaign).order_by("pk").values_list("pk", flat=True)[:SAMPLE_MEMBERS])
        for variant in campaign.variants.select_related("template").order_by("label"):
            variants.append(
                {"variant": variant, "to_send": result["variants"].get(variant.pk, 0), "previews": preview_texts(
                        variant.template, sample_ids, coupon_sample=bool(campaign.coupon_kind),
                        product=campaign.target_product.name if campaign.target_product_id else "",
                    )}
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "campaign": campaign,
            "funnel": result,
            "variants": variants,
            "problems": services.campaign_problems(campaign),
            "title": _("Dry run: %(name)s") % {"name": campaign.name},
        }
        return TemplateResponse(request, "admin/campaigns/campaign/funnel.html", context)

    @stale_ok
    def report_view(self, request, campaign_id: int):
        campaign = self._campaign(request, campaign_id)
        report = reports.campaign_report(campaign)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "campaign": campaign,
            "report": report,
            "reasons": SkipReason.choices,
            "title": _("Report: %(name)s") % {"name": campaign.name},
        }
        return TemplateResponse(request, "admin/campaigns/campaign/report.html", context)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("id", "campaign", "member_link", "channel", "status", "skip_reason", "due_at", "sent_at", "attempts", "error")
    list_filter = ("status", "skip_reason", "channel", "campaign")
    list_select_related = ("campaign", "member")
    raw_id_fields = ("member",)
    actions = ("reconciled_sent", "reconciled_resend")
    ordering = ("-id",)

    @admin.display(description=_("member"))
    def member_link(self, obj: Delivery) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:crm_member_change", args=[obj.member_id]), obj.member)

    def _may_reconcile(self, request) -> bool:
        return request.user.has_perm("campaigns.change_campaign")

    @admin.action(description=_("Outcome unknown → the gateway's receipts show it was delivered"))
    def reconciled_sent(self, request, queryset):
        if not self._may_reconcile(request):
            raise PermissionDenied
        count = services.delivery_reconcile(deliveries=queryset, delivered=True, user=request.user)
        self.message_user(request, _("%(n)d messages marked as sent.") % {"n": count})

    @admin.action(description=_("Outcome unknown → not delivered: send again"))
    def reconciled_resend(self, request, queryset):
        if not self._may_reconcile(request):
            raise PermissionDenied
        count = services.delivery_reconcile(deliveries=queryset, delivered=False, user=request.user)
        self.message_user(request, _("%(n)d messages queued again.") % {"n": count})

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._may_reconcile(request):
            actions.pop("reconciled_sent", None)
            actions.pop("reconciled_resend", None)
        return actions


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("code", "member", "campaign", "what", "valid_until", "redeemed_at", "order")
    list_filter = ("kind", "campaign")
    list_select_related = ("member", "campaign", "category", "order")
    search_fields = ("code__exact",)
    search_help_text = _("The exact coupon code.")

    @admin.display(description=_("coupon"))
    def what(self, obj: Coupon) -> str:
        return obj.describe()


@admin.register(InboundReply)
class InboundReplyAdmin(ReadOnlyAdmin, BigTableAdmin):
    member_path = "member"
    list_display = ("received_at", "masked", "text", "member", "unsubscribed", "source")
    list_filter = ("unsubscribed", "source")

    @admin.display(description=_("mobile"))
    def masked(self, obj: InboundReply) -> str:
        return mask_mobile(obj.mobile)


@admin.register(SalutationRule)
class SalutationRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "gender", "age_band", "suffix", "priority")
    list_editable = ("gender", "age_band", "suffix", "priority")
    list_display_links = ("__str__",)


@admin.register(BannedWord)
class BannedWordAdmin(admin.ModelAdmin):
    list_display = ("word", "note")
    search_fields = ("word",)


@admin.register(SendingPolicy)
class SendingPolicyAdmin(SingletonAdmin):
    fieldsets = (
        (_("Frequency cap"), {"fields": ("cap_messages", "cap_days")}),
        (_("Quiet hours"), {"fields": ("quiet_start", "quiet_end", "usual_hour")}),
        (_("SMS"), {"fields": ("sms_unsubscribe",)}),
        (_("Rate per channel"), {"fields": ("rate_sms", "rate_wecom", "rate_email", "rate_push")}),
        (_("Retries"), {"fields": ("max_attempts", "stale_minutes")}),
    )


# The parts' admin pages, registered on import: journeys, the worklist, invite rewards, the
# dashboard (the admin home and its settings) and the product page's restock action.
from campaigns import admin_restock  # noqa: E402,F401
from campaigns.dashboard import admin as dashboard_admin  # noqa: E402,F401
from campaigns.invites import admin as invites_admin  # noqa: E402,F401
from campaigns.journeys import admin as journeys_admin  # noqa: E402,F401
from campaigns.worklist import admin as worklist_admin  # noqa: E402,F401
