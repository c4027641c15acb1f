"""Cell parsers: pure functions, no database."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm.importing.specs import parse_tags
from crm.importing.values import (
    CellError,
    age_band_for,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_gender,
    parse_mobile,
    parse_money,
    parse_positive_int,
)

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2025-05-01", dt.datetime(2025, 5, 1, tzinfo=SH)),
        ("2025/05/01", dt.datetime(2025, 5, 1, tzinfo=SH)),
        ("20250501", dt.datetime(2025, 5, 1, tzinfo=SH)),
        ("2025-5-1 9:05", dt.datetime(2025, 5, 1, 9, 5, tzinfo=SH)),
        ("2025-05-01 09:30", dt.datetime(2025, 5, 1, 9, 30, tzinfo=SH)),
        ("2025-05-01 09:30:15", dt.datetime(2025, 5, 1, 9, 30, 15, tzinfo=SH)),
        ("2025/05/01 23:59:59", dt.datetime(2025, 5, 1, 23, 59, 59, tzinfo=SH)),
        ("2025-05-01T09:30:15", dt.datetime(2025, 5, 1, 9, 30, 15, tzinfo=SH)),
        ("20250501 0930", dt.datetime(2025, 5, 1, 9, 30, tzinfo=SH)),
        ("2025年5月1日", dt.datetime(2025, 5, 1, tzinfo=SH)),  # as Chinese exports write it
        ("2025年05月01日 09:30", dt.datetime(2025, 5, 1, 9, 30, tzinfo=SH)),
        ("2025年5月1日 9:30:15", dt.datetime(2025, 5, 1, 9, 30, 15, tzinfo=SH)),
    ],
)
def test_datetimes_without_zone_are_beijing_time(raw, expected):
    value = parse_datetime(raw)
    assert value == expected
    # 09:30 in Shanghai is 01:30 UTC: the zone was applied, not UTC.
    assert value.utcoffset() == dt.timedelta(hours=8)


@pytest.mark.parametrize(
    "raw",
    ["2025-05-01T01:30:15Z", "2025-05-01T09:30:15+08:00", "2025-04-30T20:30:15-05:00", "2025-05-01 07:00:15 +0530", "2025-05-01T01:30:15.250Z"],
)
def test_a_time_with_its_offset_is_converted_to_beijing_time(raw):
    """As the shop's API takes them: an order exported at 20:30 in New York was placed at 09:30 the next day in Beijing."""
    value = parse_datetime(raw)
    assert value.replace(microsecond=0) == dt.datetime(2025, 5, 1, 9, 30, 15, tzinfo=SH)
    assert value.utcoffset() == dt.timedelta(hours=8)


@pytest.mark.parametrize("raw", ["2025-02-30", "2025-13-01", "2025-05-01 25:00", "01/05/2025", "yesterday", "2025-05-01 9:6", "2025-05-01+08:00", "2025-05-01T09:30+25:00"])
def test_impossible_or_unknown_dates_are_refused(raw):
    with pytest.raises(CellError):
        parse_datetime(raw)


def test_dates_before_2000_and_in_the_future_are_refused():
    with pytest.raises(CellError, match="2000"):
        parse_datetime("1999-12-31")
    latest = dt.datetime(2025, 5, 2, tzinfo=SH)
    with pytest.raises(CellError, match="future"):
        parse_datetime("2025-05-03", latest=latest)
    assert parse_datetime("2025-05-02", latest=latest) == latest


def test_birthday_is_a_plain_date():
    assert parse_date("1970/3/5") == dt.date(1970, 3, 5)
    assert parse_date("1970年3月5日") == dt.date(1970, 3, 5)
    with pytest.raises(CellError, match="no such date"):
        parse_date("1970年2月30日")
    with pytest.raises(CellError):
        parse_date("1970-02-29")
    assert parse_date("1970-03-05 08:30") == dt.date(1970, 3, 5)
    with pytest.raises(CellError, match="no such date"):  # found by the fuzz files: the impossible time was dropped silently
        parse_date("1970-1-1T25:61")


@pytest.mark.parametrize(
    "raw, expected",
    [("0", Decimal("0")), ("128.5", Decimal("128.5")), ("¥1,280.00", Decimal("1280.00")), ("￥12", Decimal("12")), ("3.100", Decimal("3.10")), ("128.50元", Decimal("128.50"))],
)
def test_money(raw, expected):
    assert parse_money(raw) == expected


@pytest.mark.parametrize("raw, reason", [("-5", "negative"), ("1.234", "two decimals"), ("abc", "not an amount"), ("NaN", "not an amount"), ("1e20", "too large")])
def test_bad_money_says_why(raw, reason):
    with pytest.raises(CellError, match=reason):
        parse_money(raw)


@pytest.mark.parametrize(
    "raw, expected",
    [("13800138000", "13800138000"), ("138 0013 8000", "13800138000"), ("+86 138-0013-8000", "13800138000"), ("008613800138000", "13800138000"), ("8613800138000", "13800138000"), ("１３８ ００１３ ８０００", "13800138000")],
)
def test_mobile_is_normalised(raw, expected):
    assert parse_mobile(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "12800138000", "1380013800", "138001380001", "abc"])
def test_mobile_must_be_a_mainland_number(raw):
    with pytest.raises(CellError, match="11 digits"):
        parse_mobile(raw)


def test_gender_bool_and_counts():
    assert [parse_gender(v) for v in ("F", "女", "m", "男", "")] == ["F", "F", "M", "M", "U"]
    assert [parse_bool(v) for v in ("1", "0", "是", "否", "TRUE")] == [True, False, True, False, True]
    with pytest.raises(CellError):
        parse_bool("2")
    assert parse_positive_int("3") == 3
    assert parse_positive_int("3.0") == 3
    for bad in ("0", "-1", "2.5", "x"):
        with pytest.raises(CellError):
            parse_positive_int(bad)


def test_tags_are_split_on_bars_deduplicated_and_sorted():
    assert parse_tags("宝妈|爱买水果| 宝妈 ||") == '["宝妈", "爱买水果"]'
    with pytest.raises(CellError):
        parse_tags("x" * 51)


@pytest.mark.parametrize(
    "birthday, band",
    [(dt.date(2008, 5, 2), ""), (dt.date(2008, 5, 1), "18-24"), (dt.date(1991, 5, 1), "35-44"), (dt.date(1991, 5, 2), "25-34"), (dt.date(1950, 1, 1), "55+")],
)
def test_age_band_on_a_given_day(birthday, band):
    assert age_band_for(birthday, dt.date(2026, 5, 1)) == band


def test_a_time_in_no_accepted_form_is_told_every_form_a_time_may_take():
    """A shop exporting "29/11/2026 20:00" is told the forms a time column takes, the zoned ISO
    8601 one included; a birthday column is told the date forms only."""
    with pytest.raises(CellError, match=r"YYYY-MM-DD HH:MM\[:SS\].*ISO 8601 with an offset, such as 2026-11-29T20:00:00\+08:00"):
        parse_datetime("29/11/2026 20:00")
    with pytest.raises(CellError, match="not a date: use YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or YYYY年M月D日") as refused:
        parse_date("29/11/1970")
    assert "ISO 8601" not in str(refused.value)


def test_a_mobile_in_another_scripts_digits_is_refused():
    with pytest.raises(CellError, match="11"):
        parse_mobile("138٠٠١٣٨٠٠٠")  # Arabic-Indic digits, which \\d took
