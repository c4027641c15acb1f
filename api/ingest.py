"""Batches from the shop through the file import's engine (crm.importing):
the same checks, the same upsert by natural key, one transaction per batch.

Items arrive validated for their types (api.schemas) and are handed to the
engine as rows of text cells under the canonical headings, as a file would
be. Items that carry different fields are imported as separate tables, so
that a field an item leaves out stays as it is (as a column a file lacks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from crm.importing.engine import ImportOutcome, import_table
from crm.importing.jobs import import_committed
from crm.importing.specs import SPECS
from crm.importing.values import SHANGHAI
from crm.models import Order
from crm.importing.models import ImportJob

MAX_ITEMS = 1000
# An order item with only these fields changes a known order (a refund): the rest is taken from it.
ORDER_REQUIRED = ("member_external_id", "ordered_at", "amount")
TIME_FIELDS = {"registered_at", "ordered_at", "occurred_at"}


@dataclass
class ItemError:
    index: int
    field: str
    reason: str

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: ImportOutcome) -> None:
        self.created += outcome.created
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass
class IngestResult:
    items: Counts = field(default_factory=Counts)
    lines: Counts | None = None
    errors: list[ItemError] = field(default_factory=list)
    written: bool = False

    def as_dict(self) -> dict:
        body = {**self.items.as_dict(), "rejected": len({error.index for error in self.errors})}
        if self.lines is not None:
            body["lines"] = self.lines.as_dict()
        body["errors"] = [error.as_dict() for error in sorted(self.errors, key=lambda e: (e.index, e.field))]
        return body


class ItemsTable:
    """The engine's view of a batch: headings, then (row number, cells) with the item's index as its row number."""

    format = "json"
    encoding = "utf-8"

    def __init__(self, headings: list[str], rows: list[tuple[int, list[str]]]) -> None:
        self.headings = headings
        self.rows = iter(rows)

    def position(self) -> float:
        return 0.0


class _Rollback(Exception):
    pass


def cell(name: str, value: Any) -> str:
    """One JSON value as the text a file's cell would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return "|".join(str(part) for part in value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    text = str(value).strip()
    if name in TIME_FIELDS:
        return beijing_time(text)
    return text


def beijing_time(text: str) -> str:
    """ISO 8601 with an offset becomes Beijing wall time; anything else is left for the engine to read (or refuse)."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _groups(items: Iterable[tuple[int, dict]]) -> Iterator[tuple[list[str], list[tuple[int, dict]]]]:
    by_fields: dict[tuple[str, ...], list[tuple[int, dict]]] = {}
    for index, item in items:
        by_fields.setdefault(tuple(sorted(item)), []).append((index, item))
    for fields, members in by_fields.items():
        yield list(fields), members


def _import(kind: str, items: list[tuple[int, dict]], result: IngestResult, counts: Counts, source: str, member_ids: set[int], row_field=None) -> set[int]:
    """Import items of one kind; returns the indexes of the items refused."""
    spec = SPECS[kind]
    refused: set[int] = set()
    for fields, group in _groups(items):
        rows = [(index, [cell(name, item[name]) for name in fields]) for index, item in group]
        outcome = ImportOutcome(kind=kind, dry_run=False)
        import_table(spec, ItemsTable(fields, rows), outcome, mode="valid_only", source=source)
        for error in outcome.errors:
            index, name = row_field(error.row_no, error.column) if row_field else (error.row_no, error.column)
            result.errors.append(ItemError(index, name, error.message))
            refused.add(index)
        counts.add(outcome)
        member_ids.update(outcome.member_ids)
    return refused


def _duplicates(items: list[dict], key: tuple[str, ...], result: IngestResult) -> set[int]:
    seen: dict[tuple, int] = {}
    refused: set[int] = set()
    for index, item in enumerate(items):
        value = tuple(cell(name, item.get(name)) for name in key)
        if value in seen:
            result.errors.append(ItemError(index, key[-1], _("duplicate of item %(index)d in this batch") % {"index": seen[value]}))
            refused.add(index)
        else:
            seen[value] = index
    return refused


def _complete_status_changes(items: list[dict], refused: set[int], result: IngestResult) -> set[int]:
    """An order item without member, time or amount changes a known order: fill them in from it."""
    partial = {
        item["order_no"]: index for index, item in enumerate(items) if index not in refused and any(name not in item for name in ORDER_REQUIRED)
    }
    if not partial:
        return set()
    known = {
        row["order_no"]: row
        for row in Order.objects.filter(order_no__in=list(partial)).values("order_no", "member__external_id", "ordered_at", "amount")
    }
    refused: set[int] = set()
    for order_no, index in partial.items():
        row = known.get(order_no)
        if row is None:
            missing = next(name for name in ORDER_REQUIRED if name not in items[index])
            result.errors.append(ItemError(index, missing, _("required for an order the CRM does not know yet")))
            refused.add(index)
            continue
        item = items[index]
        item.setdefault("member_external_id", row["member__external_id"])
        item.setdefault("ordered_at", row["ordered_at"].astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"))
        item.setdefault("amount", row["amount"])
    return refused


KEYS = {"members": ("external_id",), "orders": ("order_no",), "events": ("member_external_id", "kind", "occurred_at")}


def ingest(kind: str, items: list[dict], *, valid_only: bool, source: str) -> IngestResult:
    """Import a batch: all or nothing (every bad item named), or only the valid items.

    kind: members, orders (each with optional inline lines) or events. Items are
    dicts of canonical field names, fields left out absent."""
    if kind not in KEYS:
        raise ValueError(kind)
    result = IngestResult(lines=Counts() if kind == "orders" else None)
    member_ids: set[int] = set()
    items = [dict(item) for item in items]
    lines = {index: item.pop("lines", None) for index, item in enumerate(items)} if kind == "orders" else {}
    try:
        with transaction.atomic():
            refused = _duplicates(items, KEYS[kind], result)
            if kind == "orders":
                refused |= _complete_status_changes(items, refused, result)
            taken = [(index, item) for index, item in enumerate(items) if index not in refused]
            refused |= _import(kind, taken, result, result.items, source, member_ids)
            if kind == "orders":
                _import_lines(items, lines, refused, result, source, member_ids)
            if result.errors and not valid_only:
                raise _Rollback
            result.written = True
            if member_ids:
                # The same signal as a file import: tiers, circles, points and coupons follow (after the commit).
                import_committed.send(sender=ImportJob, job=None, kind=kind, member_ids=sorted(member_ids))
    except _Rollback:
        result.items, result.lines = Counts(), (Counts() if kind == "orders" else None)
    return result


def _import_lines(items: list[dict], lines: dict[int, list | None], refused: set[int], result: IngestResult, source: str, member_ids: set[int]) -> None:
    rows: list[tuple[int, dict]] = []
    where: list[tuple[int, int]] = []  # stage row -> (item index, line index)
    for index, item_lines in lines.items():
        if index in refused or not item_lines:
            continue
        skus: dict[str, int] = {}
        for position, line in enumerate(item_lines):
            sku = str(line.get("sku", "")).strip()
            if sku in skus:
                result.errors.append(ItemError(index, f"lines[{position}].sku", _("duplicate of line %(line)d of this order") % {"line": skus[sku]}))
                continue
            skus[sku] = position
            rows.append((len(where), {"order_no": items[index]["order_no"], **line}))
            where.append((index, position))
    if not rows:
        return

    def row_field(row_no: int, column: str) -> tuple[int, str]:
        index, position = where[row_no]
        return index, f"lines[{position}].{column}" if column else f"lines[{position}]"

    _import("order_lines", rows, result, result.lines, source, member_ids, row_field)
