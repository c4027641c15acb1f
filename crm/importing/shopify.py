"""Shopify's order export, as the shop downloads it (the "shopify" preset).

Shopify writes one row per line item; the order's own fields (Financial
Status, Paid at, Total, Email, Phone...) are on its first row only, Name is the
order number (#1001), and times carry their offset (2025-10-07 09:50:26 +0200).
One import brings in the orders and their lines:

- each order goes to the member with its customer's mobile (normalised: +86,
  spaces and dashes dropped; Phone, else Billing Phone, else Shipping Phone)
  or, failing that, email; a customer the CRM does not know becomes a new
  member (ID SHOP-<mobile or email>, name from Billing Name);
- paid and partially_refunded orders count as paid (the latter at Total less
  Refunded Amount), refunded ones as refunded; pending, authorized, voided and
  other unpaid orders are skipped and counted, not errors;
- times become Beijing time; lines of the same SKU in one order are summed.

The converted members, orders and lines then go through the import engine as
three tables in one transaction, so every check, the upsert and the dry run
are the same as for the canonical files, and errors name the file's rows."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.db.models.functions import Lower
from django.utils.translation import gettext as _

from crm.importing.engine import ErrorSink, ImportOutcome, import_table
from crm.importing.reading import FileError, Table, open_table
from crm.importing.specs import SPECS
from crm.importing.values import SHANGHAI
from crm.models import Member
from crm.validators import CN_MOBILE_RE, normalise_cn_mobile

PRESET = "shopify"
PAID = {"paid": "paid", "partially_refunded": "paid", "refunded": "refunded"}
REQUIRED = ("Name", "Financial Status", "Created at", "Total", "Lineitem quantity", "Lineitem name", "Lineitem price")
KNOWN = (
    *REQUIRED, "Email", "Phone", "Billing Phone", "Shipping Phone", "Billing Name", "Shipping Name", "Paid at", "Refunded Amount",
    "Discount Code", "Lineitem sku", "Lineitem discount", "Lineitem compare at price",
)
ID_PREFIX = "SHOP-"


@dataclass
class ShopifyOutcome:
    """What a Shopify file did: the engine's outcome of each table, and the orders skipped by status."""

    dry_run: bool
    committed: bool = False
    total_rows: int = 0
    orders: int = 0
    skipped: Counter = field(default_factory=Counter)  # financial status -> orders
    errors: ErrorSink = field(default_factory=ErrorSink)
    tables: dict[str, ImportOutcome] = field(default_factory=dict)
    member_ids: list[int] = field(default_factory=list)

    kind: str = "orders"
    ignored_columns: list = field(default_factory=list)

    def created_of(self, kind: str) -> int:
        return self.tables[kind].created if kind in self.tables and not self.rejected else 0

    def updated_of(self, kind: str) -> int:
        return self.tables[kind].updated if kind in self.tables and not self.rejected else 0

    @property
    def rejected(self) -> bool:
        return not self.dry_run and not self.committed

    # What the import page shows (crm.importing.jobs stores it), counted in orders.
    @property
    def error_rows(self) -> int:
        return len({error.row_no for error in self.errors})

    @property
    def valid_rows(self) -> int:
        return max(self.total_rows - self.error_rows, 0)

    @property
    def created(self) -> int:
        return self.created_of("orders")

    @property
    def updated(self) -> int:
        return self.updated_of("orders")

    @property
    def unchanged(self) -> int:
        return 0 if self.rejected else max(self.orders - self.created - self.updated, 0)

    @property
    def summary(self) -> str:
        skipped = ", ".join(f"{status} {count}" for status, count in sorted(self.skipped.items())) or "-"
        return _(
            "Shopify: %(orders)d orders, %(skipped)d skipped as unpaid (%(which)s); new members %(members)d; "
            "order lines new %(lines)d, changed %(lines_changed)d."
        ) % {
            "orders": self.orders, "skipped": sum(self.skipped.values()), "which": skipped, "members": self.created_of("members"),
            "lines": self.created_of("order_lines"), "lines_changed": self.updated_of("order_lines"),
        }


class _Rollback(Exception):
    pass


def _time(raw: str) -> dt.datetime:
    """2025-10-07 09:50:26 +0200 (Shopify), or ISO with an offset, as an aware datetime."""
    text = raw.strip()
    for pattern in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M %z"):
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
    value = dt.datetime.fromisoformat(text)  # ValueError when not a time at all
    return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)


def _money(raw: str) -> Decimal:
    value = Decimal(raw.strip().replace(",", "") or "0")
    if not value.is_finite():
        raise InvalidOperation
    return value


def _beijing(value: dt.datetime) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _mobile(*candidates: str) -> str:
    for raw in candidates:
        mobile = normalise_cn_mobile(raw.lstrip("'"))
        if CN_MOBILE_RE.match(mobile):
            return mobile
    return ""


def _new_member_id(mobile: str, email: str) -> str:
    key = mobile or email
    member_id = f"{ID_PREFIX}{key}"
    return member_id if len(member_id) <= 64 else f"{ID_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def shopify_import(path: Path, *, original_name: str = "", mode: str = "dry_run", source: str = "") -> ShopifyOutcome:
    """Import a Shopify order export. mode: "dry_run", "all" (all or nothing) or "valid_only"."""
    outcome = ShopifyOutcome(dry_run=mode == "dry_run")
    try:
        table = open_table(path, original_name or path.name, {heading.lower() for heading in KNOWN})
    except FileError as exc:
        outcome.errors.add(exc.row_no, exc.column, exc.message)
        return outcome
    try:
        converted = _convert(table, outcome)
    finally:
        table.close()
    if converted is None or (mode != "valid_only" and outcome.errors.count):
        return outcome
    members, orders, lines = converted
    inner = "valid_only" if mode == "valid_only" else "all"
    source = source or original_name or path.name
    try:
        with transaction.atomic():
            for kind, (headings, body) in (("members", members), ("orders", orders), ("order_lines", lines)):
                result = ImportOutcome(kind=kind, dry_run=False)
                import_table(SPECS[kind], Table(headings, iter(body), format="shopify", encoding=table.encoding), result, mode=inner, source=source)
                outcome.tables[kind] = result
                for error in result.errors:
                    outcome.errors.add(error.row_no, error.column, error.message, error.value)
                if not result.committed:
                    raise _Rollback
                outcome.member_ids.extend(result.member_ids)
            if mode == "dry_run":
                raise _Rollback
            outcome.committed = True
    except _Rollback:
        pass
    outcome.member_ids = sorted(set(outcome.member_ids))
    return outcome


def _convert(table: Table, outcome: ShopifyOutcome):
    """The file's rows as the engine's three tables (headings, rows), or None when a needed column is missing."""
    index = {heading.strip().lstrip("\ufeff").lower(): number for number, heading in enumerate(table.headings)}
    missing = [heading for heading in REQUIRED if heading.lower() not in index]
    if missing:
        for heading in missing:
            outcome.errors.add(1, heading, _("this column of Shopify's order export is missing"))
        return None

    def cell(cells: list[str], heading: str) -> str:
        position = index.get(heading.lower())
        return cells[position].strip() if position is not None and position < len(cells) else ""

    orders: dict[str, dict] = {}
    for row_no, cells in table.rows:
        if not any(cells):
            continue
        outcome.total_rows += 1
        number = cell(cells, "Name")
        if not number:
            outcome.errors.add(row_no, "Name", _("this cell is required"))
            continue
        order = orders.get(number)
        if order is None:  # the first row: the order's own fields
            order = orders[number] = {"number": number[:64], "row": row_no, "lines": {}, "bad": False}
            status = cell(cells, "Financial Status").lower()
            order["status"] = status
            if status not in PAID:
                continue
            try:
                order["at"] = _time(cell(cells, "Paid at") or cell(cells, "Created at"))
            except ValueError:
                column = "Paid at" if cell(cells, "Paid at") else "Created at"
                outcome.errors.add(row_no, column, _("not a time like 2025-10-07 09:50:26 +0200"), cell(cells, column))
                order["bad"] = True
            try:
                amount = _money(cell(cells, "Total"))
                if status == "partially_refunded":
                    amount -= _money(cell(cells, "Refunded Amount"))
                order["amount"] = max(amount, Decimal("0"))
            except (InvalidOperation, ValueError):
                outcome.errors.add(row_no, "Total", _("not an amount"), cell(cells, "Total"))
                order["bad"] = True
            order["email"] = cell(cells, "Email").lower()
            order["mobile"] = _mobile(cell(cells, "Phone"), cell(cells, "Billing Phone"), cell(cells, "Shipping Phone"))
            order["name"] = cell(cells, "Billing Name") or cell(cells, "Shipping Name")
            order["coupon"] = cell(cells, "Discount Code")[:64]
            if not order["email"] and not order["mobile"]:
                outcome.errors.add(row_no, "Email", _("no mainland mobile and no email to find the customer by"))
                order["bad"] = True
        if order["status"] not in PAID:
            continue
        name = cell(cells, "Lineitem name")
        sku = (cell(cells, "Lineitem sku") or name)[:64]
        try:
            quantity = int(cell(cells, "Lineitem quantity"))
            price = _money(cell(cells, "Lineitem price"))
            discount = _money(cell(cells, "Lineitem discount")) if cell(cells, "Lineitem discount") else Decimal("0")
            compare = _money(cell(cells, "Lineitem compare at price")) if cell(cells, "Lineitem compare at price") else Decimal("0")
        except (ValueError, InvalidOperation):
            outcome.errors.add(row_no, "Lineitem quantity", _("quantity and price must be numbers"), cell(cells, "Lineitem quantity"))
            order["bad"] = True
            continue
        if not sku or quantity <= 0:
            outcome.errors.add(row_no, "Lineitem sku", _("a line needs a SKU or a name, and a quantity above 0"))
            order["bad"] = True
            continue
        line = order["lines"].setdefault(sku, {"row": row_no, "name": name[:200], "quantity": 0, "value": Decimal("0"), "promo": False})
        line["quantity"] += quantity
        line["value"] += price * quantity
        line["promo"] = line["promo"] or discount > 0 or compare > price

    kept = [order for order in orders.values() if order["status"] in PAID and not order["bad"]]
    outcome.skipped.update(order["status"] or "?" for order in orders.values() if order["status"] not in PAID)
    outcome.orders = len(kept)
    return _tables(kept)


def _tables(orders: list[dict]):
    """The engine's members (new customers only), orders and lines tables: (headings, [(file row, cells)])."""
    mobiles = {order["mobile"] for order in orders if order["mobile"]}
    emails = {order["email"] for order in orders if order["email"]}
    by_mobile = dict(Member.objects.filter(mobile__in=mobiles, erased_at__isnull=True).values_list("mobile", "external_id"))
    by_email = dict(
        Member.objects.annotate(lowered=Lower("email")).filter(lowered__in=emails, erased_at__isnull=True).values_list("lowered", "external_id")
    )
    members: dict[str, tuple[int, list[str]]] = {}
    order_rows: list[tuple[int, list[str]]] = []
    line_rows: list[tuple[int, list[str]]] = []
    for order in sorted(orders, key=lambda order: order["row"]):
        external_id = (order["mobile"] and by_mobile.get(order["mobile"])) or (order["email"] and by_email.get(order["email"]))
        if not external_id:
            external_id = _new_member_id(order["mobile"], order["email"])
            if external_id not in members:  # the customer's first order in the file: registered by then
                members[external_id] = (order["row"], [external_id, order["name"][:64], order["mobile"], order["email"], _beijing(order["at"])])
        order_rows.append((order["row"], [order["number"], external_id, _beijing(order["at"]), str(order["amount"]), PAID[order["status"]], "shopify", order["coupon"]]))
        for sku, line in order["lines"].items():
            unit = (line["value"] / line["quantity"]).quantize(Decimal("0.01"))
            line_rows.append((line["row"], [order["number"], sku, line["name"], str(line["quantity"]), str(unit), "1" if line["promo"] else "0"]))
    return (
        (["external_id", "name", "mobile", "email", "registered_at"], sorted(members.values())),
        (["order_no", "member_external_id", "ordered_at", "amount", "status", "channel", "coupon_code"], order_rows),
        (["order_no", "sku", "product_name", "quantity", "unit_price", "is_promo"], line_rows),
    )
