"""Malformed import files, generated from a seed: the same seed gives the same
files, byte for byte, so a failure found in CI is reproduced on any machine
with `malformed_files(seed)[n]`.

Each file starts as a valid members, orders, order lines or events file and
gets one to three mutations: wrong encodings, other delimiters, missing and
extra columns, short and long rows, bad dates, amounts and mobiles, duplicate
keys, formula cells, huge cells, stray quotes, NUL bytes, empty files, and
.xlsx workbooks whole, with bad cells, or cut off part way."""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import openpyxl

# Members M00000..M00019 and orders SO00000..SO00019 exist before the files are
# imported, so that order, line and event files are valid until mutated.
KNOWN_MEMBERS = 20

HEADINGS = {
    "members": ["external_id", "name", "mobile", "gender", "birthday", "registered_at", "community", "tags", "consent_sms"],
    "orders": ["order_no", "member_external_id", "ordered_at", "amount", "status", "channel", "coupon_code"],
    "order_lines": ["order_no", "sku", "product_name", "category", "quantity", "unit_price"],
    "events": ["member_external_id", "kind", "occurred_at"],
}
DATE_CELLS = {"birthday", "registered_at", "ordered_at", "occurred_at"}
AMOUNT_CELLS = {"amount", "unit_price", "quantity"}
KEY_CELL = {"members": "external_id", "orders": "order_no", "order_lines": "sku", "events": "member_external_id"}
TEXT_CELLS = {"name", "community", "tags", "channel", "product_name", "category", "coupon_code"}

BAD_DATES = ["2025-13-40", "31/02/2025", "yesterday", "2025-02-29", "0000-00-00", "99999-01-01", "2025-1-1T25:61", "٢٠٢٥-٠١-٠١", "NaN"]
BAD_AMOUNTS = ["abc", "-5", "1e400", "¥12,3,4", "NaN", "Infinity", "0x1F", "１２３", "12.345.6", "99999999999999999999"]
BAD_MOBILES = ["12345", "1380013800a", "+1 555 0100", "138001380000000", "１３８００１３８０００"]
FORMULAS = ['=HYPERLINK("http://x","点我")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "=1+1", "\t=evil()", "\r=evil()"]
ENCODINGS = ["utf-16-le", "shift_jis", "latin-1", "cp1252", "utf-32", "big5"]
ODD_DELIMITERS = [";", "\t", "|", ":", "#", " ", "，"]


@dataclass
class FuzzFile:
    number: int
    kind: str
    name: str
    data: bytes
    mutations: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # what a failing test prints
        return f"<file {self.number}: {self.kind} {self.name} {'+'.join(self.mutations)} ({len(self.data):,} bytes)>"


def _valid_rows(kind: str, rng: random.Random) -> list[list[str]]:
    count = rng.randint(1, 12)
    rows = []
    for n in range(count):
        member = f"M{rng.randrange(KNOWN_MEMBERS):05d}"
        if kind == "members":
            rows.append([f"M{rng.randrange(KNOWN_MEMBERS, 400):05d}", rng.choice(["张丽", "王强", "李娜", "欧阳修"]), f"13{rng.randrange(10**9):09d}",
                         rng.choice(["F", "M", "女", "男", ""]), f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                         "2024-05-01 10:00", "阳光花园", "爱买水果", rng.choice(["1", "0", "是", ""])])
        elif kind == "orders":
            rows.append([f"SO{rng.randrange(KNOWN_MEMBERS, 900):05d}", member, f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 09:30",
                         f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}", rng.choice(["paid", "refunded"]), "小程序", ""])
        elif kind == "order_lines":
            rows.append([f"SO{rng.randrange(KNOWN_MEMBERS):05d}", f"SKU{n}-{rng.randrange(99)}", "土鸡蛋30枚", "蛋类", str(rng.randint(1, 5)),
                         f"{rng.randint(1, 99)}.50"])
        else:
            rows.append([member, rng.choice(["open", "click", "share", "view"]), f"2025-0{rng.randint(1, 9)}-0{rng.randint(1, 9)} 08:00"])
    return rows


Table = list[list[str]]  # row 0 holds the headings


def _cell_of(table: Table, names: set[str], rng: random.Random) -> tuple[int, int] | None:
    columns = [i for i, h in enumerate(table[0]) if h in names]
    if not columns or len(table) < 2:
        return None
    return rng.randrange(1, len(table)), rng.choice(columns)


def _set(values: list[str], names: set[str]) -> Callable[[Table, random.Random], None]:
    def mutate(table: Table, rng: random.Random) -> None:
        where = _cell_of(table, names, rng)
        if where:
            row, column = where
            if column < len(table[row]):
                table[row][column] = rng.choice(values)

    return mutate


def _missing_column(table: Table, rng: random.Random) -> None:
    column = rng.randrange(len(table[0]))
    for row in table:
        if column < len(row):
            del row[column]


def _extra_column(table: Table, rng: random.Random) -> None:
    table[0].append(rng.choice(["备注", "unknown", "external_id ", "", "mobile"]))
    for row in table[1:]:
        row.append(rng.choice(["x", "", "=1+1", "13800138000"]))


def _short_or_long_row(table: Table, rng: random.Random) -> None:
    if len(table) > 1:
        row = table[rng.randrange(1, len(table))]
        if rng.random() < 0.5 and row:
            del row[rng.randrange(len(row)) :]
        else:
            row.extend(["extra"] * rng.randint(1, 4))


def _duplicate_key(table: Table, rng: random.Random) -> None:
    if len(table) > 1:
        table.append(list(table[rng.randrange(1, len(table))]))


def _huge_cell(table: Table, rng: random.Random) -> None:
    where = _cell_of(table, set(table[0]), rng)
    if where and where[1] < len(table[where[0]]):
        table[where[0]][where[1]] = "长" * rng.choice([300, 70_000, 400_000])


def _heading_case_and_space(table: Table, rng: random.Random) -> None:
    column = rng.randrange(len(table[0]))
    table[0][column] = rng.choice([table[0][column].upper(), f"  {table[0][column]}\u3000", table[0][column] + "\ufeff"])


TABLE_MUTATIONS: dict[str, Callable[[Table, random.Random], None]] = {
    "missing_column": _missing_column,
    "extra_column": _extra_column,
    "short_or_long_row": _short_or_long_row,
    "bad_date": _set(BAD_DATES, DATE_CELLS),
    "bad_amount": _set(BAD_AMOUNTS, AMOUNT_CELLS),
    "bad_mobile": _set(BAD_MOBILES, {"mobile"}),
    "bad_reference": _set(["M99999", "", "SO99999", "nobody"], {"member_external_id", "order_no"}),
    "duplicate_key": _duplicate_key,
    "formula": _set(FORMULAS, TEXT_CELLS | {"name"}),
    "huge_cell": _huge_cell,
    "heading_spelling": _heading_case_and_space,
    "bad_choice": _set(["X", "unknown", "已付款?", "2"], {"gender", "status", "kind", "consent_sms"}),
}


def _csv(table: Table, delimiter: str) -> str:
    def quote(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in f'"\n\r{delimiter}') else value

    return "".join(delimiter.join(quote(cell) for cell in row) + "\n" for row in table)


def _xlsx(table: Table) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in table:
        sheet.append([cell[:32_000] for cell in row])  # Excel's own cell limit
    book.properties.created = dt.datetime(2026, 1, 1)
    buffer = io.BytesIO()
    book.save(buffer)
    # The zip stamps each part with the time of writing: stamp them all with one date instead.
    fixed = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as target:
        for part in source.infolist():
            content = source.read(part.filename)
            if part.filename == "docProps/core.xml":  # openpyxl writes the time of saving here
                content = re.sub(rb"<dcterms:modified([^>]*)>[^<]*<", rb"<dcterms:modified\1>2026-01-01T00:00:00Z<", content)
            target.writestr(zipfile.ZipInfo(part.filename, date_time=(2026, 1, 1, 0, 0, 0)), content)
    return fixed.getvalue()


def _file(number: int, rng: random.Random) -> FuzzFile:
    kind = rng.choice(list(HEADINGS))
    table: Table = [list(HEADINGS[kind]), *_valid_rows(kind, rng)]
    mutations: list[str] = []
    for name in rng.sample(list(TABLE_MUTATIONS), rng.randint(1, 3)):
        TABLE_MUTATIONS[name](table, rng)
        mutations.append(name)

    form = rng.random()
    if form < 0.15:  # a workbook, maybe cut off part way
        data = _xlsx(table)
        if rng.random() < 0.6:
            data = data[: rng.randrange(4, len(data))]
            mutations.append("truncated_xlsx")
        return FuzzFile(number, kind, f"{kind}.xlsx", data, mutations)
    delimiter = ","
    if rng.random() < 0.25:
        delimiter = rng.choice(ODD_DELIMITERS)
        mutations.append(f"delimiter {delimiter!r}")
    text = _csv(table, delimiter)
    encoding = "utf-8"
    if rng.random() < 0.25:
        encoding = rng.choice(ENCODINGS)
        mutations.append(f"encoding {encoding}")
    data = text.encode(encoding, errors="replace")
    byte_level = rng.random()
    if byte_level < 0.06:
        data = data[: rng.randrange(len(data) + 1)]
        mutations.append("cut off")
    elif byte_level < 0.12:
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice([b"\x00", b"\xff\xfe", b"\xc3\x28", b'"', b"\r", b"\x1a"]) + data[at:]
        mutations.append("stray bytes")
    elif byte_level < 0.15:
        data = rng.choice([b"", b"\xef\xbb\xbf", b"\n\n\n", text.splitlines(keepends=True)[0].encode()])
        mutations.append("empty")
    name = rng.choice([f"{kind}.csv", f"{kind}.CSV", f"{kind}.txt", f"{kind}.xlsx" if rng.random() < 0.05 else f"{kind}.csv"])
    return FuzzFile(number, kind, name, data, mutations)


def malformed_files(seed: int, count: int = 1000) -> list[FuzzFile]:
    rng = random.Random(seed)
    return [_file(number, rng) for number in range(count)]
