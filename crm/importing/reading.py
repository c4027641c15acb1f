"""Reading an uploaded table, CSV (UTF-8, UTF-8 with BOM, GBK/GB18030,
UTF-16) or .xlsx, as a stream of rows so that memory stays flat.

Row numbers are the ones a spreadsheet shows: the heading is row 1."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.translation import gettext as _

_CHUNK = 1024 * 1024
_DELIMITERS = (",", "\t", ";", "|")
# Cells longer than this are refused by the csv module rather than read into memory.
csv.field_size_limit(64 * 1024)


class FileError(ValueError):
    """The file as a whole cannot be read; row and column say where it broke."""

    def __init__(self, message: str, *, row_no: int = 1, column: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.row_no = row_no
        self.column = column


@dataclass
class Table:
    headings: list[str]
    rows: Iterator[tuple[int, list[str]]]
    format: str
    encoding: str = ""
    closers: list = field(default_factory=list)
    position: Callable[[], float] = lambda: 0.0

    def close(self) -> None:
        for close in self.closers:
            close()


def detect_encoding(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            # Excel on Chinese Windows saves CSV as GBK; GB18030 is its superset.
            return "gb18030"
    return "utf-8"


def _pick_delimiter(first_line: str, known: set[str]) -> str:
    def score(delimiter: str) -> tuple[int, int]:
        cells = [cell.strip().lower() for cell in first_line.split(delimiter)]
        return sum(1 for cell in cells if cell in known), len(cells)

    return max(_DELIMITERS, key=score)


def _xlsx_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def open_table(path: Path, original_name: str, known_headings: set[str]) -> Table:
    """Open a CSV or .xlsx file; known_headings (lower case) help pick the CSV delimiter."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    name = original_name.lower()
    if name.endswith(".xls") and not name.endswith(".xlsx"):
        raise FileError(_("old .xls files are not supported: save the sheet as .xlsx or CSV"))
    if magic.startswith(b"PK\x03\x04") or name.endswith(".xlsx"):
        return _open_xlsx(path)
    if b"\x00" in magic and not magic.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileError(_("this is not a CSV or .xlsx file"))
    return _open_csv(path, known_headings)


def _open_csv(path: Path, known_headings: set[str]) -> Table:
    encoding = detect_encoding(path)
    handle = open(path, encoding=encoding, newline="")
    try:
        first_line = handle.readline()
    except UnicodeDecodeError:
        handle.close()
        raise FileError(_("the file's text encoding is not UTF-8 or GBK")) from None
    if not first_line.strip():
        handle.close()
        raise FileError(_("the file is empty or its first row is blank: row 1 must hold the column headings"))
    delimiter = _pick_delimiter(first_line, known_headings)
    handle.seek(0)
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        headings = next(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        handle.close()
        raise FileError(_("row 1 cannot be read: %(error)s") % {"error": exc}) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        row_no = 1
        try:
            for row_no, cells in enumerate(reader, start=2):  # noqa: B007 - row_no is read after the loop on error
                yield row_no, cells
        except UnicodeDecodeError:
            raise FileError(_("the text encoding breaks after this row"), row_no=row_no + 1) from None
        except csv.Error as exc:
            raise FileError(_("the row cannot be read: %(error)s") % {"error": exc}, row_no=reader.line_num) from None

    size = max(path.stat().st_size, 1)
    return Table(
        headings=headings,
        rows=rows(),
        format="csv",
        encoding=encoding,
        closers=[handle.close],
        position=lambda: min(handle.buffer.tell() / size, 1.0),
    )


def _open_xlsx(path: Path) -> Table:
    import openpyxl

    # Whatever openpyxl or the zip and XML parsers beneath it raise on a user's
    # file means the same to the user: the workbook cannot be read.
    handle = open(path, "rb")
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        iterator = sheet.iter_rows(values_only=True)
        first = next(iterator, None)
    except Exception as exc:  # noqa: BLE001
        handle.close()
        raise FileError(_("the .xlsx file is damaged or incomplete (%(error)s)") % {"error": exc}) from None
    if first is None:
        workbook.close()
        handle.close()
        raise FileError(_("the sheet is empty: row 1 must hold the column headings"))
    headings = [_xlsx_text(value) for value in first]

    def rows() -> Iterator[tuple[int, list[str]]]:
        row_no = 1
        try:
            for row_no, values in enumerate(iterator, start=2):  # noqa: B007
                yield row_no, [_xlsx_text(value) for value in values]
        except Exception as exc:  # noqa: BLE001 - see _open_xlsx
            raise FileError(
                _("the .xlsx file is damaged after this row (%(error)s)") % {"error": exc}, row_no=row_no + 1
            ) from None

    last_row = max(sheet.max_row or 0, 1)
    state = {"row": 1}

    def counted_rows() -> Iterator[tuple[int, list[str]]]:
        for row_no, cells in rows():
            state["row"] = row_no
            yield row_no, cells

    return Table(
        headings=headings,
        rows=counted_rows(),
        format="xlsx",
        closers=[workbook.close, handle.close],
        position=lambda: min(state["row"] / last_row, 1.0),
    )
