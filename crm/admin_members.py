"""The member screen: list, page, consent and tags, and the member's rights
(logged reveal, personal-data export, erasure)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Sum
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from crm.admin_base import AuditedExportMixin, BigTableAdmin
from crm.admin_filters import FilterSetListFilter
from crm.admin_imports import ImportButtonMixin
from crm.admin_member_standing import MemberStandingMixin
from crm.audit import audit_record
from crm.filters import MemberFilter
from crm.masking import mask_mobile
from crm.models import AuditAction, Consent, EngagementKind, Member, MemberTag
from crm.privacy import member_erase, member_personal_data, mobile_reveal
from crm.resources import MemberResource
from crm.services import consent_set
from crm.validators import normalise_cn_mobile, validate_cn_mobile

LATEST_ORDERS_ON_MEMBER_PAGE = 20


class MemberFilterBox(FilterSetListFilter):
    filterset_class = MemberFilter
    title = _("members")


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    can_delete = False
    fields = ("channel", "granted", "changed_at", "source")
    readonly_fields = ("changed_at", "source")


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("reason"),
        max_length=200,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=_("For example the member's request number, or the call you are returning."),
    )


class MemberTagInline(admin.TabularInline):
    model = MemberTag
    extra = 0
    autocomplete_fields = ("tag",)
    verbose_name = _("tag")
    verbose_name_plural = _("tags")


class MemberForm(forms.ModelForm):
    """The full mobile number never reaches the browser: staff type a new one to change it."""

    new_mobile = forms.CharField(
        label=_("new mobile"), required=False, max_length=20, help_text=_("Leave empty to keep the current number.")
    )

    class Meta:
        model = Member
        exclude = ("mobile", "tags")

    def clean_new_mobile(self) -> str:
        raw = self.cleaned_data["new_mobile"]
        if not raw.strip():
            return ""
        mobile = normalise_cn_mobile(raw)
        validate_cn_mobile(mobile)
        return mobile

    def save(self, commit: bool = True) -> Member:
        if self.cleaned_data.get("new_mobile"):
            self.instance.mobile = self.cleaned_data["new_mobile"]
        return super().save(commit)


@admin.register(Member)
class MemberAdmin(MemberStandingMixin, ImportButtonMixin, AuditedExportMixin, BigTableAdmin):
    member_path = ""
    import_kind = "members"
    resource_classes = [MemberResource]
    form = MemberForm
    list_display = (
        "external_id",
        "name",
        "masked_mobile",
        "gender",
        "age_band",
        "community",
        "leader",
        *MemberStandingMixin.standing_list_display,
        "registered_at",
    )
    list_display_links = ("external_id", "name")
    list_select_related = ("community__leader", "metrics__tier")
    list_filter = (*MemberStandingMixin.standing_list_filter, MemberFilterBox)
    # Exact or prefix lookups only: each is served by an index.
    search_fields = ("external_id__exact", "mobile__startswith", "name__startswith")
    search_help_text = _("Member ID (exact), the start of a mobile number, or the start of a name.")
    ordering = ("-id",)
    autocomplete_fields = ("community",)
    inlines = (ConsentInline, MemberTagInline)
    readonly_fields = (
        "masked_mobile", "created_at", "latest_orders", "engagement", "consent_history",
        *MemberStandingMixin.standing_readonly_fields,
    )
    fieldsets = (
        (None, {"fields": ("external_id", "name", "masked_mobile", "new_mobile", "wechat_unionid", "email")}),
        (_("Profile"), {"fields": ("gender", "birthday", "age_band", "registered_at", "source_channel", "community")}),
        (_("Household"), {"fields": ("lives_alone", "has_elderly", "has_children", "works_late")}),
        (_("Personalisation"), {"fields": ("personalisation_opt_out", "personalisation_opt_out_at")}),
        *MemberStandingMixin.standing_fieldsets,
        (_("Orders"), {"fields": ("latest_orders",)}),
        (_("Engagement"), {"fields": ("engagement",)}),
        (_("Consent history"), {"fields": ("consent_history",)}),
    )

    @admin.display(description=_("mobile"))
    def masked_mobile(self, member: Member) -> str:
        return mask_mobile(member.mobile)

    @admin.display(description=_("group leader"))
    def leader(self, member: Member) -> str:
        return str(member.community.leader) if member.community and member.community.leader else "-"

    @admin.display(description=_("latest orders"))
    def latest_orders(self, member: Member) -> str:
        if not member.pk:
            return "-"
        orders = list(member.orders.order_by("-ordered_at")[:LATEST_ORDERS_ON_MEMBER_PAGE])
        if not orders:
            return _("No orders yet.")
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td class="crm-money">¥{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:crm_order_change", args=[order.pk]),
                    order.order_no,
                    admin.utils.display_for_value(order.ordered_at, "-"),
                    order.amount,
                    order.get_status_display(),
                    order.channel or "-",
                )
                for order in orders
            ),
        )
        all_orders = reverse("admin:crm_order_changelist") + f"?member={member.external_id}"
        return format_html(
            '<table class="crm-inline-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>'
            '</thead><tbody>{}</tbody></table><p><a href="{}">{}</a></p>',
            _("order no."),
            _("ordered at"),
            _("amount (¥)"),
            _("status"),
            _("channel"),
            rows,
            all_orders,
            _("All orders of this member"),
        )

    @admin.display(description=_("engagement"))
    def engagement(self, member: Member) -> str:
        if not member.pk:
            return "-"
        totals = member.engagement_events.values_list("kind").annotate(total=Sum("count")).order_by("kind")
        if not totals:
            return _("No engagement recorded.")
        labels = dict(EngagementKind.choices)
        return format_html_join(
            "", "<span class='crm-chip'>{}: {}</span> ", ((labels.get(kind, kind), total) for kind, total in totals)
        )

    @admin.display(description=_("consent history"))
    def consent_history(self, member: Member) -> str:
        if not member.pk:
            return "-"
        events = list(member.consent_events.order_by("-occurred_at")[:50])
        if not events:
            return _("No consent recorded.")
        return format_html(
            '<table class="crm-inline-table"><tbody>{}</tbody></table>',
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        admin.utils.display_for_value(event.occurred_at, "-"),
                        event.get_channel_display(),
                        _("granted") if event.granted else _("withdrawn"),
                        event.source,
                    )
                    for event in events
                ),
            ),
        )

    change_form_template = "admin/crm/member/change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:member_id>/reveal-mobile/", view(self.reveal_mobile_view), name="crm_member_reveal_mobile"),
            path("<int:member_id>/personal-data/", view(self.personal_data_view), name="crm_member_personal_data"),
            path("<int:member_id>/erase/", view(self.erase_view), name="crm_member_erase"),
            *self.standing_urls(),
            *super().get_urls(),
        ]

    def _member_for(self, request, member_id: int, permission: str) -> Member:
        if not request.user.has_perm(permission):
            raise PermissionDenied
        member = self.get_object(request, str(member_id))
        if member is None:  # not there, or outside the user's communities
            raise Http404
        return member

    def _reason_page(self, request, member: Member, *, title: str, explanation: str, button: str, danger: bool, form=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": member,
            "title": title,
            "explanation": explanation,
            "button": button,
            "danger": danger,
            "form": form or ReasonForm(),
        }
        return TemplateResponse(request, "admin/crm/member/reason_form.html", context)

    def reveal_mobile_view(self, request, member_id: int):
        member = self._member_for(request, member_id, "crm.reveal_mobile")
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            mobile = mobile_reveal(member=member, actor=request.user, reason=form.cleaned_data["reason"], request=request)
            context = {**self.admin_site.each_context(request), "opts": self.opts, "original": member, "title": _("Full mobile number"), "mobile": mobile}
            response = TemplateResponse(request, "admin/crm/member/revealed.html", context)
            response.headers["Cache-Control"] = "no-store"
            return response
        return self._reason_page(
            request,
            member,
            title=_("Reveal the full mobile number"),
            explanation=_("The number is shown once and the reveal is written to the audit log with your reason."),
            button=_("Reveal"),
            danger=False,
            form=form,
        )

    def personal_data_view(self, request, member_id: int):
        member = self._member_for(request, member_id, "crm.export_personal_data")
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = member_personal_data(
                member=member, actor=request.user, reason=form.cleaned_data["reason"], request=request
            )
            response = HttpResponse(
                json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json; charset=utf-8"
            )
            response.headers["Content-Disposition"] = f'attachment; filename="member-{member.external_id}.json"'
            response.headers["Cache-Control"] = "no-store"
            return response
        return self._reason_page(
            request,
            member,
            title=_("Export everything held about this member"),
            explanation=_("For the member's request to know what is held (PIPL art. 45). The export is logged."),
            button=_("Download"),
            danger=False,
            form=form,
        )

    def erase_view(self, request, member_id: int):
        member = self._member_for(request, member_id, "crm.erase_member")
        if member.erased_at:
            messages.info(request, _("This member's personal data was already erased."))
            return HttpResponseRedirect(reverse("admin:crm_member_change", args=[member.pk]))
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            member_erase(member=member, actor=request.user, reason=form.cleaned_data["reason"], request=request)
            messages.success(request, _("Personal data erased; orders and consent history are kept."))
            return HttpResponseRedirect(reverse("admin:crm_member_change", args=[member.pk]))
        return self._reason_page(
            request,
            member,
            title=_("Erase this member's personal data"),
            explanation=_(
                "Name, mobile, WeChat ID, birthday, household and tags are erased and every channel's consent is "
                "withdrawn. Orders, amounts and consent history stay. This cannot be undone."
            ),
            button=_("Erase"),
            danger=True,
            form=form,
        )

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Consent:
            return super().save_formset(request, form, formset, change)
        # Consent changes go through the service, which keeps the proof.
        source = f"admin: {request.user.get_username()}"
        for consent in formset.save(commit=False):
            if consent_set(member=form.instance, channel=consent.channel, granted=consent.granted, source=source):
                audit_record(
                    actor=request.user,
                    action=AuditAction.CONSENT_CHANGE,
                    summary=f"{form.instance.external_id}: {consent.channel} → {'granted' if consent.granted else 'withdrawn'}",
                    obj=form.instance,
                    detail={"channel": consent.channel, "granted": consent.granted},
                    request=request,
                )

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "crm_member_change":
            return queryset.select_related("community__leader")
        return queryset
