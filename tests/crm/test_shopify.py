"""Shopify's order export imports as it is: import_orders FILE --preset shopify."""

import csv
import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from crm.models import Member, Order, OrderLine, OrderStatus
from tests.crm.factories import SHANGHAI, MemberFactory

pytestmark = pytest.mark.django_db

# Shopify's documented order export columns, in its order.
HEADINGS = (
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,Currency,Subtotal,Shipping,Taxes,Total,"
    "Discount Code,Discount Amount,Shipping Method,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,"
    "Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,Billing Name,Billing Street,Billing Address1,"
    "Billing Address2,Billing Company,Billing City,Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,"
    "Shipping Address1,Shipping Address2,Shipping Company,Shipping City,Shipping Zip,Shipping Province,Shipping Country,Shipping Phone,Notes,"
    "Note Attributes,Cancelled at,Payment Method,Payment Reference,Refunded Amount,Vendor,Outstanding Balance,Employee,Location,Device ID,Id,"
    "Tags,Risk Level,Source,Lineitem discount,Tax 1 Name,Tax 1 Value,Phone,Receipt Number,Duties,Billing Province Name,Shipping Province Name,"
    "Payment ID,Payment Terms Name,Next Payment Due At,Payment References"
).split(",")


def order(name, status, total, created, lines, *, paid="", email="", phone="", billing="", refunded="", code=""):
    """Shopify's rows of one order: its fields on the first row only, one row per line item."""
    rows = []
    for number, (sku, title, quantity, price, *extra) in enumerate(lines):
        row = {"Name": name, "Lineitem quantity": str(quantity), "Lineitem name": title, "Lineitem price": price, "Lineitem sku": sku,
               "Lineitem requires shipping": "true", "Lineitem taxable": "true", "Lineitem fulfillment status": "pending",
               "Lineitem discount": extra[0] if extra else "0.00"}
        if number == 0:
            row |= {"Email": email, "Financial Status": status, "Paid at": paid, "Fulfillment Status": "unfulfilled", "Currency": "CNY",
                    "Subtotal": total, "Shipping": "0.00", "Taxes": "0.00", "Total": total, "Discount Code": code, "Created at": created,
                    "Billing Name": billing, "Billing Phone": phone, "Refunded Amount": refunded, "Source": "web", "Id": str(5000 + len(name))}
        rows.append(row)
    return rows


@pytest.fixture
def export(tmp_path):
    MemberFactory(external_id="M-KNOWN", name="张老顾客", mobile="13800138000")
    MemberFactory(external_id="M-LI", name="李女士", mobile="", email="li@example.com")
    rows = [
        *order("#1001", "paid", "128.00", "2025-10-07 09:45:00 +0200", [("EGG-30", "土鸡蛋30枚", 2, "39.00"), ("RICE-5", "五常大米5kg", 1, "50.00")],
               paid="2025-10-07 09:50:26 +0200", phone="+86 138-0013-8000", billing="张老顾客"),
        *order("#1002", "refunded", "66.00", "2025-10-08 20:00:00 +0800", [("TEA-1", "明前龙井", 1, "66.00")],
               paid="2025-10-08 20:01:00 +0800", email="amy@example.com", billing="Amy Wang"),
        *order("#1003", "pending", "45.00", "2025-10-09 10:00:00 +0800", [("EGG-30", "土鸡蛋30枚", 1, "45.00")], email="amy@example.com"),
        *order("#1004", "voided", "45.00", "2025-10-09 11:00:00 +0800", [("EGG-30", "土鸡蛋30枚", 1, "45.00")], phone="13800138000"),
        *order("#1005", "partially_refunded", "100.00", "2025-10-10 09:00:00 -0500", [("OIL-1", "山茶油", 1, "100.00", "10.00")],
               paid="2025-10-10 09:05:00 -0500", email="Li@Example.com", billing="李女士", refunded="30.00", code="WELCOME10"),
        *order("#1006", "paid", "90.00", "2025-10-11 08:00:00 +0800", [("EGG-30", "土鸡蛋30枚", 1, "40.00"), ("EGG-30", "土鸡蛋30枚", 1, "50.00")],
               paid="2025-10-11 08:00:10 +0800", phone="8613900139000", billing="王芳"),
        *order("#1007", "paid", "39.00", "2025-10-12 08:00:00 +0800", [("EGG-30", "土鸡蛋30枚", 1, "39.00")],
               paid="2025-10-12 08:00:00 +0800", phone="'+8613900139000", billing="王芳"),
    ]
    path = tmp_path / "orders_export_1.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADINGS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def run(path, *extra):
    out = StringIO()
    call_command("import_orders", str(path), "--preset", "shopify", *extra, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_shopify_export_brings_in_orders_and_lines_for_known_and_new_customers(export):
    text = run(export)
    assert "skipped as unpaid (pending 1, voided 1)" in text
    assert set(Order.objects.values_list("order_no", flat=True)) == {"#1001", "#1002", "#1005", "#1006", "#1007"}

    first = Order.objects.get(order_no="#1001")
    assert first.member.external_id == "M-KNOWN"  # +86 138-0013-8000 is his mobile
    assert first.ordered_at == dt.datetime(2025, 10, 7, 15, 50, 26, tzinfo=SHANGHAI)  # Paid at, +0200, in Beijing time
    assert (first.amount, first.status, first.channel) == (Decimal("128.00"), OrderStatus.PAID, "shopify")
    assert sorted(first.lines.values_list("product__sku", "quantity", "unit_price")) == [("EGG-30", 2, Decimal("39.00")), ("RICE-5", 1, Decimal("50.00"))]

    partly = Order.objects.get(order_no="#1005")
    assert partly.member.external_id == "M-LI"  # by email, whatever its case
    assert (partly.amount, partly.status, partly.coupon_code) == (Decimal("70.00"), OrderStatus.PAID, "WELCOME10")
    assert partly.lines.get().is_promo

    assert Order.objects.get(order_no="#1002").status == OrderStatus.REFUNDED
    amy = Member.objects.get(external_id="SHOP-amy@example.com")
    assert (amy.name, amy.email) == ("Amy Wang", "amy@example.com")
    wang = Member.objects.get(mobile="13900139000")
    assert wang.external_id == "SHOP-13900139000" and wang.name == "王芳"
    assert set(wang.orders.values_list("order_no", flat=True)) == {"#1006", "#1007"}
    assert Order.objects.get(order_no="#1006").lines.get().quantity == 2  # one SKU twice in the order: summed
    assert Member.objects.count() == 4

    again = run(export)  # the same file twice is the same as once
    assert "new members 0; order lines new 0, changed 0." in again and "new 0, changed 0, unchanged 5." in again
    assert Order.objects.count() == 5 and OrderLine.objects.count() == 6


def test_a_dry_run_writes_nothing_and_a_bad_row_is_named(export, tmp_path):
    assert "Dry run: nothing was written." in run(export, "--dry-run")
    assert Order.objects.count() == 0 and Member.objects.count() == 2

    lines = export.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([lines[0], lines[1].replace("2025-10-07 09:50:26 +0200", "07/10/2025 9h50"), *lines[2:]]), encoding="utf-8")
    errors = StringIO()
    with pytest.raises(CommandError):
        call_command("import_orders", str(broken), "--preset", "shopify", stdout=StringIO(), stderr=errors)
    assert "row 2, Paid at" in errors.getvalue() and "07/10/2025 9h50" in errors.getvalue()
    assert Order.objects.count() == 0 and Member.objects.count() == 2  # nothing half-written


def test_a_file_that_is_not_a_shopify_export_is_told_so(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("订单号,会员编号,下单时间,金额\nA1,M1,2025-10-01 10:00,10\n", encoding="utf-8")
    errors = StringIO()
    with pytest.raises(CommandError):
        call_command("import_orders", str(path), "--preset", "shopify", stdout=StringIO(), stderr=errors)
    assert "Financial Status" in errors.getvalue()
    with pytest.raises(CommandError, match="No such preset"):
        call_command("import_orders", str(path), "--preset", "woo", stdout=StringIO())
