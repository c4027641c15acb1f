"""django-import-export resources, used for exports (with the Chinese headings
that imports accept) and, in bench/import.py, as the library's own import path
to compare against.

Imports in the product go through crm.importing, which streams and validates
a whole file in one transaction; see crm/importing/engine.py."""

from __future__ import annotations

from import_export import fields, resources, widgets

from crm.importing.specs import SPECS
from crm.masking import mask_mobile
from crm.models import EngagementEvent, Member, Order, OrderLine

# A cell starting with one of these is read as a formula by Excel, WPS and
# LibreOffice (OWASP CSV injection); exports prefix it with an apostrophe.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")


def neutralise_formula(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def heading(kind: str, name: str) -> str:
    for column in SPECS[kind].columns:
        if column.name == name:
            return column.heading
    raise KeyError(name)


class SafeExportResource(resources.ModelResource):
    """Neutralises spreadsheet formulas in every exported cell."""

    def export_field(self, field, instance, **kwargs):
        return neutralise_formula(super().export_field(field, instance, **kwargs))


class MaskedMobileWidget(widgets.CharWidget):
    def render(self, value, obj=None, **kwargs):
        return mask_mobile(value or "")


class MemberResource(SafeExportResource):
    external_id = fields.Field(attribute="external_id", column_name=heading("members", "external_id"))
    name = fields.Field(attribute="name", column_name=heading("members", "name"))
    mobile = fields.Field(attribute="mobile", column_name=heading("members", "mobile"), widget=MaskedMobileWidget())
    gender = fields.Field(attribute="gender", column_name=heading("members", "gender"))
    birthday = fields.Field(
        attribute="birthday", column_name=heading("members", "birthday"), widget=widgets.DateWidget("%Y-%m-%d")
    )
    age_band = fields.Field(attribute="age_band", column_name=heading("members", "age_band"))
    registered_at = fields.Field(
        attribute="registered_at",
        column_name=heading("members", "registered_at"),
        widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"),
    )
    community = fields.Field(attribute="community__name", column_name=heading("members", "community"))
    source_channel = fields.Field(attribute="source_channel", column_name=heading("members", "source_channel"))

    class Meta:
        model = Member
        fields = (
            "external_id",
            "name",
            "mobile",
            "gender",
            "birthday",
            "age_band",
            "registered_at",
            "community",
            "source_channel",
        )
        export_order = fields

    def get_export_queryset(self, request=None):
        return super().get_export_queryset(request).select_related("community")


class OrderResource(SafeExportResource):
    order_no = fields.Field(attribute="order_no", column_name=heading("orders", "order_no"))
    member_external_id = fields.Field(
        attribute="member",
        column_name=heading("orders", "member_external_id"),
        widget=widgets.ForeignKeyWidget(Member, field="external_id"),
    )
    ordered_at = fields.Field(
        attribute="ordered_at",
        column_name=heading("orders", "ordered_at"),
        widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"),
    )
    amount = fields.Field(attribute="amount", column_name=heading("orders", "amount"), widget=widgets.DecimalWidget())
    status = fields.Field(attribute="status", column_name=heading("orders", "status"))
    channel = fields.Field(attribute="channel", column_name=heading("orders", "channel"))
    coupon_code = fields.Field(attribute="coupon_code", column_name=heading("orders", "coupon_code"))

    class Meta:
        model = Order
        fields = ("order_no", "member_external_id", "ordered_at", "amount", "status", "channel", "coupon_code")
        import_id_fields = ("order_no",)
        export_order = fields

    def get_export_queryset(self, request=None):
        return super().get_export_queryset(request).select_related("member")


class OrderLineResource(SafeExportResource):
    order_no = fields.Field(attribute="order__order_no", column_name=heading("order_lines", "order_no"))
    sku = fields.Field(attribute="product__sku", column_name=heading("order_lines", "sku"))
    product_name = fields.Field(attribute="product__name", column_name=heading("order_lines", "product_name"))
    category = fields.Field(attribute="product__category__name", column_name=heading("order_lines", "category"))
    quantity = fields.Field(attribute="quantity", column_name=heading("order_lines", "quantity"))
    unit_price = fields.Field(attribute="unit_price", column_name=heading("order_lines", "unit_price"))
    is_promo = fields.Field(
        attribute="is_promo", column_name=heading("order_lines", "is_promo"), widget=widgets.BooleanWidget()
    )

    class Meta:
        model = OrderLine
        fields = ("order_no", "sku", "product_name", "category", "quantity", "unit_price", "is_promo")
        export_order = fields

    def get_export_queryset(self, request=None):
        return super().get_export_queryset(request).select_related("order", "product__category")


class EngagementEventResource(SafeExportResource):
    member_external_id = fields.Field(attribute="member__external_id", column_name=heading("events", "member_external_id"))
    kind = fields.Field(attribute="kind", column_name=heading("events", "kind"))
    occurred_at = fields.Field(
        attribute="occurred_at",
        column_name=heading("events", "occurred_at"),
        widget=widgets.DateTimeWidget("%Y-%m-%d %H:%M:%S"),
    )
    count = fields.Field(attribute="count", column_name=heading("events", "count"))

    class Meta:
        model = EngagementEvent
        fields = ("member_external_id", "kind", "occurred_at", "count")
        export_order = fields

    def get_export_queryset(self, request=None):
        return super().get_export_queryset(request).select_related("member")
