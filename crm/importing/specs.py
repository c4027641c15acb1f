"""The four kinds of import file: their columns and their set-based steps (the member
file's in member_spec.py).

Headings: the canonical English name or the Chinese heading that exports
write. Columns a file does not have are left as they are on existing rows."""

# SQL here is assembled from table and column names defined in code (marked
# "nosec B608" for bandit); every value from a file or a user travels as a
# query parameter or through COPY, never inside the SQL text.

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.importing.engine import STAGE, Column, Context, Spec
from crm.importing.values import (
    choice_parser,
    parse_bool,
    parse_past_datetime,
    parse_money,
    parse_positive_int,
    text_parser,
)
from crm.importing.member_spec import CONSENT_COLUMNS, MemberSpec, parse_tags  # noqa: F401 - the spec's table below; re-exported
from crm.models import Departure, EngagementKind, OrderStatus

_STATUS = {
    "paid": OrderStatus.PAID,
    "已支付": OrderStatus.PAID,
    "已付款": OrderStatus.PAID,
    "支付": OrderStatus.PAID,
    "refunded": OrderStatus.REFUNDED,
    "已退款": OrderStatus.REFUNDED,
    "退款": OrderStatus.REFUNDED,
    # A returned order is refunded (DOMAIN.md section 1: "refunded/returned flag").
    "returned": OrderStatus.REFUNDED,
    "已退货": OrderStatus.REFUNDED,
    "退货": OrderStatus.REFUNDED,
}


def _reject_unknown_members(ctx: Context) -> None:
    ctx.reject_rows(
        f"SELECT s.row_no, s.member_external_id FROM {STAGE} s "  # nosec B608
        f"WHERE NOT EXISTS (SELECT 1 FROM crm_member m WHERE m.external_id = s.member_external_id) "
        f"ORDER BY s.row_no",
        [],
        "member_external_id",
        lambda row: _("no member with this member ID: import the members first"),
    )


class OrderSpec(Spec):
    kind = "orders"
    tables = ("crm_order",)
    columns = [
        Column("order_no", "订单号", text_parser(64), required=True),
        Column("member_external_id", "会员编号", text_parser(64), required=True, aliases=("会员id", "external_id")),
        Column("ordered_at", "下单时间", parse_past_datetime, sql_type="datetime", required=True),
        Column("amount", "金额", parse_money, sql_type="money", required=True, aliases=("订单金额",)),
        Column(
            "status", "状态", choice_parser(_STATUS, gettext_lazy("use paid or refunded (已支付/已退款)")), default="paid"
        ),
        Column("channel", "渠道", text_parser(32), default=""),
        Column("coupon_code", "优惠券码", text_parser(64), default=""),
        # The refund as a flag (1/0, 是/否), as many shop exports write it: 1 makes the order refunded.
        Column(
            "refunded", "是否退款", parse_bool, sql_type="bool",
            aliases=("is_refunded", "refund", "returned", "is_returned", "refunded_flag", "退款", "已退款", "退货", "是否退货", "退款标记"),
        ),
    ]
    _optional = {"status": "'paid'", "channel": "''", "coupon_code": "''"}

    def finish_row(self, values: dict[str, Any], now: dt.datetime) -> None:
        if values["refunded"]:
            values["status"] = OrderStatus.REFUNDED

    def check(self, ctx: Context) -> None:
        ctx.reject_duplicates(["order_no"], "order_no")
        _reject_unknown_members(ctx)

    def touched_members_sql(self) -> str:
        return f"SELECT m.id AS member_id FROM {STAGE} s JOIN crm_member m ON m.external_id = s.member_external_id"  # nosec B608

    def merge(self, ctx: Context) -> tuple[int, int]:
        # An order moved to another member leaves the old one's figures behind: his are recomputed too.
        # Each move is kept (Departure): the nightly run's net under a lost task.
        ctx.cursor.execute(
            f"SELECT o.id, o.member_id FROM {STAGE} s JOIN crm_order o ON o.order_no = s.order_no "  # nosec B608
            "JOIN crm_member m ON m.external_id = s.member_external_id WHERE o.member_id <> m.id"
        )
        departures = [
            Departure(kind=Departure.Kind.ORDER, source_id=order_id, member_id=member_id, at=ctx.now, moved=True)
            for order_id, member_id in ctx.cursor.fetchall()
        ]
        Departure.objects.bulk_create(departures, batch_size=1_000)
        ctx.departed_members = sorted({departure.member_id for departure in departures})
        values = {
            "order_no": "s.order_no",
            "member_id": "m.id",
            "ordered_at": "s.ordered_at",
            "amount": "s.amount",
        }
        present = ctx.present | ({"status"} if "refunded" in ctx.present else set())  # the flag sets the status (finish_row)
        for column, absent in self._optional.items():
            values[column] = f"s.{column}" if column in present else absent
        update = ["member_id", "ordered_at", "amount", *(c for c in self._optional if c in present)]
        return ctx.upsert(
            table="crm_order",
            key=["order_no"],
            values=values,
            update=update,
            source_sql=f"{STAGE} s JOIN crm_member m ON m.external_id = s.member_external_id",
            params={"now": ctx.now_param()},
            on_update={"changed_at": "%(now)s"},
        )


class OrderLineSpec(Spec):
    kind = "order_lines"
    tables = ("crm_orderline", "crm_product")
    columns = [
        Column("order_no", "订单号", text_parser(64), required=True),
        Column("sku", "商品编码", text_parser(64), required=True, aliases=("sku编码",)),
        Column("product_name", "商品名称", text_parser(200), default=""),
        Column("category", "品类", text_parser(50), default="", aliases=("类目",)),
        Column("quantity", "数量", parse_positive_int, sql_type="int", required=True),
        Column("unit_price", "单价", partial(parse_money, max_digits=10), sql_type="money", required=True),
        Column("is_promo", "促销", parse_bool, sql_type="bool", default=False, aliases=("是否促销",)),
    ]

    def check(self, ctx: Context) -> None:
        ctx.reject_duplicates(["order_no", "sku"], "sku")
        ctx.reject_rows(
            f"SELECT s.row_no, s.order_no FROM {STAGE} s "  # nosec B608
            f"WHERE NOT EXISTS (SELECT 1 FROM crm_order o WHERE o.order_no = s.order_no) ORDER BY s.row_no",
            [],
            "order_no",
            lambda row: _("no order with this order number: import the orders first"),
        )

    def touched_members_sql(self) -> str:
        return f"SELECT o.member_id AS member_id FROM {STAGE} s JOIN crm_order o ON o.order_no = s.order_no"  # nosec B608

    def merge(self, ctx: Context) -> tuple[int, int]:
        cursor = ctx.cursor
        if "category" in ctx.present:
            cursor.execute(
                f"INSERT INTO crm_category (name) SELECT DISTINCT category FROM {STAGE} WHERE category <> '' "  # nosec B608
                "ON CONFLICT (name) DO NOTHING"
            )
        # One product per SKU; a name or category left empty keeps what the product had.
        named = "product_name" in ctx.present
        categorised = "category" in ctx.present
        products = (
            f"SELECT sku, MAX(product_name) AS product_name, MAX(category) AS category FROM {STAGE} GROUP BY sku"  # nosec B608
        )
        cursor.execute(
            f"INSERT INTO crm_product (sku, name, category_id) "  # nosec B608
            f"SELECT p.sku, CASE WHEN p.product_name <> '' THEN p.product_name ELSE p.sku END, c.id "
            f"FROM ({products}) p LEFT JOIN crm_category c ON c.name = p.category WHERE true "
            f"ON CONFLICT (sku) DO NOTHING"
        )
        if named:
            cursor.execute(
                f"UPDATE crm_product SET name = (SELECT p.product_name FROM ({products}) p WHERE p.sku = crm_product.sku) "  # nosec B608
                f"WHERE sku IN (SELECT sku FROM ({products}) p WHERE p.product_name <> '' AND "
                f"{ctx.distinct('p.product_name', 'crm_product.name')})"
            )
        if categorised:
            cursor.execute(
                f"UPDATE crm_product SET recategorised_at = %s, category_id = ( "  # nosec B608
                f"SELECT c.id FROM ({products}) p JOIN crm_category c ON c.name = p.category "
                f"WHERE p.sku = crm_product.sku) "
                f"WHERE sku IN (SELECT p.sku FROM ({products}) p JOIN crm_category c ON c.name = p.category "
                f"WHERE {ctx.distinct('c.id', 'crm_product.category_id')})",
                [ctx.now_param()],
            )
        values = {
            "order_id": "o.id",
            "product_id": "p.id",
            "quantity": "s.quantity",
            "unit_price": "s.unit_price",
            "is_promo": "s.is_promo" if "is_promo" in ctx.present else "false",
        }
        update = ["quantity", "unit_price", *(["is_promo"] if "is_promo" in ctx.present else [])]
        counts = ctx.upsert(
            table="crm_orderline",
            key=["order_id", "product_id"],
            values=values,
            update=update,
            source_sql=f"{STAGE} s JOIN crm_order o ON o.order_no = s.order_no JOIN crm_product p ON p.sku = s.sku",
            returning="order_id",
        )
        # A line whose values changed changes its order: the nightly runs read the orders changed
        # since (a line new to an order they had read, they find by the lines' key).
        changed = sorted(set(ctx.updated_values))
        for start in range(0, len(changed), 5_000):
            part = changed[start : start + 5_000]
            cursor.execute(
                f"UPDATE crm_order SET changed_at = %s WHERE id IN ({', '.join(['%s'] * len(part))})",  # nosec B608
                [ctx.now_param(), *part],
            )
        return counts


_EVENT_KINDS = {
    "share": EngagementKind.SHARE,
    "分享": EngagementKind.SHARE,
    "invite": EngagementKind.INVITE,
    "邀请": EngagementKind.INVITE,
    "邀请好友": EngagementKind.INVITE,
    "group_message": EngagementKind.GROUP_MESSAGE,
    "群消息": EngagementKind.GROUP_MESSAGE,
    "群发言": EngagementKind.GROUP_MESSAGE,
    "organised_group_buy": EngagementKind.ORGANISED_GROUP_BUY,
    "组织拼团": EngagementKind.ORGANISED_GROUP_BUY,
    "发起拼团": EngagementKind.ORGANISED_GROUP_BUY,
    "ugc": EngagementKind.UGC,
    "用户内容": EngagementKind.UGC,
    # The kinds of user content DOMAIN.md names (a recipe, a review, a photo post), as exports name them.
    "recipe": EngagementKind.UGC,
    "review": EngagementKind.UGC,
    "photo_post": EngagementKind.UGC,
    "食谱": EngagementKind.UGC,
    "评价": EngagementKind.UGC,
    "晒单": EngagementKind.UGC,
    "晒图": EngagementKind.UGC,
}


class EventSpec(Spec):
    kind = "events"
    tables = ("crm_engagementevent",)
    columns = [
        Column("member_external_id", "会员编号", text_parser(64), required=True, aliases=("会员id", "external_id")),
        Column(
            "kind",
            "类型",
            choice_parser(
                _EVENT_KINDS,
                gettext_lazy("use share, invite, group_message, organised_group_buy or ugc (分享/邀请/群消息/组织拼团/用户内容)"),
            ),
            required=True,
        ),
        Column("occurred_at", "发生时间", parse_past_datetime, sql_type="datetime", required=True),
        Column("count", "次数", parse_positive_int, sql_type="int", default=1),
    ]

    def check(self, ctx: Context) -> None:
        ctx.reject_duplicates(["member_external_id", "kind", "occurred_at"], "occurred_at")
        _reject_unknown_members(ctx)

    def touched_members_sql(self) -> str:
        return f"SELECT m.id AS member_id FROM {STAGE} s JOIN crm_member m ON m.external_id = s.member_external_id"  # nosec B608

    def merge(self, ctx: Context) -> tuple[int, int]:
        return ctx.upsert(
            table="crm_engagementevent",
            key=["member_id", "kind", "occurred_at"],
            values={"member_id": "m.id", "kind": "s.kind", "occurred_at": "s.occurred_at", "count": "s.count"},
            update=["count"] if "count" in ctx.present else [],
            source_sql=f"{STAGE} s JOIN crm_member m ON m.external_id = s.member_external_id",
            params={"now": ctx.now_param()},
            on_update={"changed_at": "%(now)s"},
        )


SPECS: dict[str, Spec] = {spec.kind: spec for spec in (MemberSpec(), OrderSpec(), OrderLineSpec(), EventSpec())}
