"""The member core in the admin: members, orders and what they reference.

Built for tables of millions of rows: estimated counts, no facets, explicit
select_related, raw-id/autocomplete widgets, indexed search lookups only.
The member screen is in admin_members.py, shared bases in admin_base.py."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from crm.admin_base import AuditedExportMixin, BigTableAdmin, ReadOnlyAdmin
from crm.admin_filters import FilterSetListFilter
from crm.admin_imports import ImportButtonMixin, ImportJobAdmin  # noqa: F401 - registers the import screens
from crm.admin_members import MemberAdmin  # noqa: F401 - registers the member screen
from crm.filters import OrderFilter
from crm.masking import mask_mobile
from crm.models import (
    AuditEvent,
    Category,
    Community,
    ConsentEvent,
    EngagementEvent,
    GroupLeader,
    Member,
    Order,
    OrderLine,
    Product,
    Tag,
)
from crm.resources import EngagementEventResource, OrderLineResource, OrderResource
from crm.scoping import scope_communities, sees_many_members

admin.site.site_header = _("Member operations")
admin.site.site_title = _("Member operations")
admin.site.index_title = _("Work bench")


class OrderFilterBox(FilterSetListFilter):
    filterset_class = OrderFilter
    title = _("orders")


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

    # A line added, edited or deleted here changes its order: the order is saved as changed, which
    # schedules its member's recompute and brings him into the next nightly run (Order.changed_at).
    # The order's own page saves the order with its lines already.
    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        self._orders_touch([obj.order_id])

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        self._orders_touch([obj.order_id])

    def delete_queryset(self, request, queryset) -> None:
        order_ids = list(queryset.values_list("order_id", flat=True).distinct())
        super().delete_queryset(request, queryset)
        self._orders_touch(order_ids)

    @staticmethod
    def _orders_touch(order_ids: list[int]) -> None:
        for order in Order.objects.filter(pk__in=order_ids):
            order.save(update_fields=["changed_at"])


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

    def get_readonly_fields(self, request, obj=None):
        # An event stays with its member (the member is part of its natural key, and what it
        # earned stays his): one recorded for the wrong member is deleted and added again.
        return ("member",) if obj is not None else ()


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
        return queryset if sees_many_members(request.user) else queryset.filter(user=request.user)


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
class ConsentEventAdmin(ReadOnlyAdmin, BigTableAdmin):
    """The proof of consent: read only."""

    member_path = "member"
    list_display = ("member", "channel", "granted", "occurred_at", "source")
    list_select_related = ("member",)
    list_filter = ("channel", "granted")
    search_fields = ("member__external_id__exact",)
    ordering = ("-id",)  # newest recorded first, off the primary key: sorting millions by occurred_at took 1.4 s


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin, BigTableAdmin):
    """Who exported, revealed or changed what: viewable and filterable, never editable."""

    list_display = ("at", "actor", "action", "summary", "object_type", "object_id", "ip_address")
    list_select_related = ("actor",)
    list_filter = ("action", ("at", admin.DateFieldListFilter))
    search_fields = ("actor__username__exact", "object_id__exact")
    search_help_text = _("User name or object ID (exact).")
    ordering = ("-at",)
    readonly_fields = [field.name for field in AuditEvent._meta.fields]
