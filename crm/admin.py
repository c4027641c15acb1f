"""The member core in the admin: members, orders and what they reference.

Built for tables of millions of rows: estimated counts, no facets, explicit
select_related, raw-id/autocomplete widgets, indexed search lookups only."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin

from crm.audit import audit_record

from crm.admin_filters import FilterSetListFilter, FilterSetMediaMixin
from crm.admin_imports import ImportButtonMixin, ImportJobAdmin  # noqa: F401 - registers the import screens
from crm.filters import MemberFilter, OrderFilter
from crm.masking import mask_mobile
from crm.models import (
    AuditAction,
    AuditEvent,
    Category,
    Community,
    Consent,
    ConsentEvent,
    EngagementEvent,
    EngagementKind,
    GroupLeader,
    Member,
    MemberTag,
    Order,
    OrderLine,
    Product,
    Tag,
)
from crm.paginator import EstimatedCountPaginator
from crm.privacy import member_erase, member_personal_data, mobile_reveal
from crm.scoping import scope_communities, scope_to_user, sees_all_members
from crm.services import consent_set
from crm.resources import EngagementEventResource, MemberResource, OrderLineResource, OrderResource
from crm.validators import normalise_cn_mobile, validate_cn_mobile

admin.site.site_header = _("Member operations")
admin.site.site_title = _("Member operations")
admin.site.index_title = _("Work bench")

LATEST_ORDERS_ON_MEMBER_PAGE = 20


class ScopedAdmin(admin.ModelAdmin):
    """Rows about members are limited to what the user may see (crm.scoping).
    member_path leads from the model to Member; None means not about members."""

    member_path: str | None = None

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        if self.member_path is None:
            return queryset
        return scope_to_user(queryset, request.user, self.member_path)


class AuditedExportMixin(ExportMixin):
    """Every export is written to the audit log with its row count and filters."""

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        rows = queryset.count()
        audit_record(
            actor=request.user,
            action=AuditAction.EXPORT,
            summary=f"{self.model._meta.verbose_name_plural}: {rows}",
            detail={
                "model": self.model._meta.label_lower,
                "rows": rows,
                "format": file_format.get_title() if hasattr(file_format, "get_title") else str(file_format),
                "filters": dict(request.GET.lists()) | {"changelist": request.POST.get("changelist_filters", "")},
            },
            request=request,
        )
        return data


class BigTableAdmin(FilterSetMediaMixin, ScopedAdmin):
    """Defaults for tables that grow to millions of rows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


class MemberFilterBox(FilterSetListFilter):
    filterset_class = MemberFilter
    title = _("members")


class OrderFilterBox(FilterSetListFilter):
    filterset_class = OrderFilter
    title = _("orders")


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
class MemberAdmin(ImportButtonMixin, AuditedExportMixin, BigTableAdmin):
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
        "registered_at",
    )
    list_display_links = ("external_id", "name")
    list_select_related = ("community__leader",)
    list_filter = (MemberFilterBox,)
    # Exact or prefix lookups only: each is served by an index.
    search_fields = ("external_id__exact", "mobile__startswith", "name__startswith")
    search_help_text = _("Member ID (exact), the start of a mobile number, or the start of a name.")
    ordering = ("-id",)
    autocomplete_fields = ("community",)
    inlines = (ConsentInline, MemberTagInline)
    readonly_fields = ("masked_mobile", "created_at", "latest_orders", "engagement", "consent_history")
    fieldsets = (
        (None, {"fields": ("external_id", "name", "masked_mobile", "new_mobile", "wechat_unionid")}),
        (_("Profile"), {"fields": ("gender", "birthday", "age_band", "registered_at", "source_channel", "community")}),
        (_("Household"), {"fields": ("lives_alone", "has_elderly", "has_children", "works_late")}),
        (_("Personalisation"), {"fields": ("personalisation_opt_out", "personalisation_opt_out_at")}),
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
            data = member_personal_data(member=member, actor=request.user, request=request)
            data["request_reason"] = form.cleaned_data["reason"]
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


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    autocomplete_fields = ("product",)
    fields = ("product", "quantity", "unit_price", "is_promo")

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).select_related("product")


@admin.register(Order)
class OrderAdmin(ImportButtonMixin, AuditedExportMixin, BigTableAdmin):
    member_path = "member"
    import_kind = "orders"
    resource_classes = [OrderResource]
    list_display = ("order_no", "member_link", "ordered_at", "amount", "status", "channel", "coupon_code")
    list_select_related = ("member",)
    list_filter = (OrderFilterBox,)
    search_fields = ("order_no__exact", "member__external_id__exact")
    search_help_text = _("Order number or member ID (exact).")
    ordering = ("-ordered_at",)
    raw_id_fields = ("member",)
    inlines = (OrderLineInline,)

    @admin.display(description=_("member"), ordering="member__external_id")
    def member_link(self, order: Order) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:crm_member_change", args=[order.member_id]),
            order.member.name or order.member.external_id,
        )


@admin.register(OrderLine)
class OrderLineAdmin(ImportButtonMixin, AuditedExportMixin, BigTableAdmin):
    member_path = "order__member"
    import_kind = "order_lines"
    resource_classes = [OrderLineResource]
    list_display = ("order", "product", "quantity", "unit_price", "is_promo")
    list_select_related = ("order", "product")
    search_fields = ("order__order_no__exact", "product__sku__exact")
    search_help_text = _("Order number or SKU (exact).")
    raw_id_fields = ("order",)
    autocomplete_fields = ("product",)
    ordering = ("-id",)


@admin.register(EngagementEvent)
class EngagementEventAdmin(ImportButtonMixin, AuditedExportMixin, BigTableAdmin):
    member_path = "member"
    import_kind = "events"
    resource_classes = [EngagementEventResource]
    list_display = ("member", "kind", "occurred_at", "count")
    list_select_related = ("member",)
    list_filter = ("kind",)
    search_fields = ("member__external_id__exact",)
    search_help_text = _("Member ID (exact).")
    raw_id_fields = ("member",)
    ordering = ("-occurred_at",)


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ("name", "leader", "member_count", "created_at")
    list_select_related = ("leader",)
    search_fields = ("name",)
    autocomplete_fields = ("leader",)

    def get_queryset(self, request) -> QuerySet:
        members = (
            Member.objects.filter(community=OuterRef("pk")).order_by().values("community").annotate(n=Count("id"))
        )
        queryset = scope_communities(super().get_queryset(request), request.user)
        return queryset.annotate(member_count=Coalesce(Subquery(members.values("n")), 0))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, community: Community) -> int:
        return community.member_count


@admin.register(GroupLeader)
class GroupLeaderAdmin(admin.ModelAdmin):
    list_display = ("display_name", "user", "masked_mobile")
    list_select_related = ("user",)
    search_fields = ("display_name", "user__username")
    autocomplete_fields = ("user",)

    @admin.display(description=_("mobile"))
    def masked_mobile(self, leader: GroupLeader) -> str:
        return mask_mobile(leader.mobile)

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        return queryset if sees_all_members(request.user) else queryset.filter(user=request.user)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category")
    list_select_related = ("category",)
    list_filter = ("category",)
    search_fields = ("sku__exact", "name")
    autocomplete_fields = ("category",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(ConsentEvent)
class ConsentEventAdmin(BigTableAdmin):
    """The proof of consent: read only."""

    member_path = "member"
    list_display = ("member", "channel", "granted", "occurred_at", "source")
    list_select_related = ("member",)
    list_filter = ("channel", "granted")
    search_fields = ("member__external_id__exact",)
    ordering = ("-occurred_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(BigTableAdmin):
    """Who exported, revealed or changed what: viewable and filterable, never editable."""

    list_display = ("at", "actor", "action", "summary", "object_type", "object_id", "ip_address")
    list_select_related = ("actor",)
    list_filter = ("action", ("at", admin.DateFieldListFilter))
    search_fields = ("actor__username__exact", "object_id__exact")
    search_help_text = _("User name or object ID (exact).")
    ordering = ("-at",)
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
