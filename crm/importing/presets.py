"""Files with the shop system's own headings: which of its columns holds which
field (suggested from the headings, confirmed on the check page and saved as a
named preset), and a preview of the first rows read that way."""

from __future__ import annotations

import difflib
from itertools import islice
from pathlib import Path

from crm.importing.engine import Spec, accepted_headings
from crm.importing.reading import open_table

SAMPLE_ROWS = 5
# Headings other shop systems use for a field, beyond the spec's own and its aliases.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "external_id": ("customer id", "customer_id", "user id", "用户id", "买家id", "客户编号", "会员卡号"),
    "name": ("customer name", "full name", "客户姓名", "收货人"),
    "mobile": ("phone", "mobile phone", "telephone", "手机号码", "联系电话", "收货人电话"),
    "email": ("e-mail", "email address"),
    "registered_at": ("created at", "signup date", "注册日期", "入会时间"),
    "order_no": ("order id", "order number", "order_id", "订单编号", "交易号"),
    "member_external_id": ("customer id", "customer", "user id", "用户id", "买家id", "客户编号", "会员卡号"),
    "ordered_at": ("order date", "created at", "paid at", "下单日期", "付款时间", "创建时间"),
    "amount": ("total", "order total", "实付金额", "实付款", "订单总额", "支付金额"),
    "status": ("financial status", "order status", "订单状态", "支付状态"),
    "coupon_code": ("discount code", "优惠码"),
    "sku": ("sku code", "product code", "商品编号", "货号"),
    "product_name": ("product", "item name", "title", "商品", "宝贝标题"),
    "quantity": ("qty", "quantity ordered", "购买数量"),
    "unit_price": ("price", "item price", "商品单价"),
}


def file_sample(path: Path, original_name: str, spec: Spec) -> tuple[list[str], list[list[str]]]:
    """The file's headings and its first rows (as text)."""
    table = open_table(path, original_name, set(spec.headings()))
    try:
        return [heading.strip().lstrip("\ufeff") for heading in table.headings], [cells for _row, cells in islice(table.rows, SAMPLE_ROWS)]
    finally:
        table.close()


def suggest_mapping(spec: Spec, headings: list[str], current: dict[str, str] | None = None) -> dict[str, str]:
    """Field -> the file's heading that most likely holds it ("" when none does)."""
    lowered = {heading.lower(): heading for heading in headings if heading}
    canonical = spec.headings()
    taken: set[str] = set()
    suggestion: dict[str, str] = {}
    for column in spec.columns:
        picked = (current or {}).get(column.name, "")
        if picked not in headings:
            picked = next((heading for low, heading in lowered.items() if canonical.get(low) == column.name), "")
        if not picked:
            candidates = [column.name, column.heading, *column.aliases, *SYNONYMS.get(column.name, ())]
            exact = [lowered[name.lower()] for name in candidates if name.lower() in lowered and lowered[name.lower()] not in taken]
            close = difflib.get_close_matches(column.heading.lower(), [low for low in lowered if lowered[low] not in taken], n=1, cutoff=0.75)
            picked = exact[0] if exact else lowered[close[0]] if close else ""
        if picked:
            taken.add(picked)
        suggestion[column.name] = picked
    return suggestion


def preview_rows(spec: Spec, headings: list[str], rows: list[list[str]], mapping: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """The first rows as the import would read them: one column per field the mapping (or the canonical headings) finds."""
    accepted = accepted_headings(spec, mapping)
    positions: dict[str, int] = {}
    for index, heading in enumerate(headings):
        field_name = accepted.get(heading.lower())
        if field_name and field_name not in positions:
            positions[field_name] = index
    fields = [column.name for column in spec.columns if column.name in positions]
    return fields, [[cells[positions[name]] if positions[name] < len(cells) else "" for name in fields] for cells in rows]
