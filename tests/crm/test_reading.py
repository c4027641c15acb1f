"""Reading files: encodings, delimiters, Excel, broken files."""

import openpyxl
import pytest

from crm.importing.reading import FileError, detect_encoding, open_table

KNOWN = {"external_id", "name", "mobile"}
TEXT = "external_id,name,mobile\nM1,张丽,13800138000\n"


@pytest.mark.parametrize("encoding, detected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("utf-16", "utf-16")])
def test_encodings_excel_and_wps_write_are_read(write_file, encoding, detected):
    path = write_file("members.csv", TEXT, encoding)
    assert detect_encoding(path) == detected
    table = open_table(path, "members.csv", KNOWN)
    assert table.headings == ["external_id", "name", "mobile"]
    assert list(table.rows) == [(2, ["M1", "张丽", "13800138000"])]
    table.close()


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_found_from_the_headings(write_file, delimiter):
    path = write_file("members.csv", TEXT.replace(",", delimiter))
    table = open_table(path, "members.csv", KNOWN)
    assert list(table.rows) == [(2, ["M1", "张丽", "13800138000"])]


def test_xlsx_cells_become_text(tmp_path):
    import datetime as dt

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["order_no", "ordered_at", "amount", "count"])
    sheet.append(["SO1", dt.datetime(2025, 5, 1, 9, 30), 12.5, 3.0])
    path = tmp_path / "orders.xlsx"
    workbook.save(path)
    table = open_table(path, "orders.xlsx", set())
    assert table.format == "xlsx"
    assert list(table.rows) == [(2, ["SO1", "2025-05-01 09:30:00", "12.5", "3"])]
    table.close()


def test_truncated_xlsx_is_refused_with_a_reason(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.append(["a"])
    path = tmp_path / "broken.xlsx"
    workbook.save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FileError, match="damaged"):
        open_table(path, "broken.xlsx", set())


def test_old_xls_and_binary_files_are_refused(write_file, tmp_path):
    with pytest.raises(FileError, match=".xls"):
        open_table(write_file("old.xls", "x"), "old.xls", set())
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PN\x00G\x00\x00")
    with pytest.raises(FileError, match="not a CSV"):
        open_table(binary, "photo.csv", set())
    with pytest.raises(FileError, match="empty"):
        open_table(write_file("empty.csv", ""), "empty.csv", set())
