"""Pure parsers for one cell of an import file.

Each takes the stripped text of a cell and returns the value to store, or
raises CellError with a message for the user. They run once per cell of files
with millions of rows, so they are plain and avoid needless allocation."""

from __future__ import annotations

import datetime as dt
import re
from contextvars import ContextVar
from functools import lru_cache
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from crm.validators import CN_MOBILE_RE, normalise_cn_mobile

SHANGHAI = ZoneInfo("Asia/Shanghai")


# The latest acceptable time of an import, set once per file by the engine.
LATEST_ACCEPTED: ContextVar[dt.datetime | None] = ContextVar("LATEST_ACCEPTED", default=None)
# The earliest business time accepted (settings.CRM_EARLIEST_DATE, local midnight), set once per file by the engine.
EARLIEST_ACCEPTED: ContextVar[dt.datetime] = ContextVar("EARLIEST_ACCEPTED", default=dt.datetime(2000, 1, 1, tzinfo=SHANGHAI))


class CellError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_DATE_SEP = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$")
# As Chinese exports write it: 2026年11月29日 08:05.
_DATE_ZH = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日(?:\s*(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:[ T]*(\d{1,2}):?(\d{2})(?::?(\d{2}))?)?$")
# A time written with its zone (ISO 8601, as the shop's API takes it): 2026-11-29T20:00:00-05:00, ...Z, ... +0800.
_ZONED = re.compile(r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?) ?(Z|[+-]\d{2}:?\d{2})$")


def _date_parts(raw: str) -> tuple[int, ...]:
    match = _DATE_SEP.match(raw)
    if match:
        year, _sep, month, day, hour, minute, second = match.groups()
    else:
        match = _DATE_COMPACT.match(raw) or _DATE_ZH.match(raw)
        if not match:
            raise CellError(_("not a date: use YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or YYYY年M月D日, optionally with HH:MM[:SS]"))
        year, month, day, hour, minute, second = match.groups()
    return int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)


@lru_cache(maxsize=8192)
def _cached_date(text: str) -> tuple[int, int, int]:
    year, month, day, _h, _m, _s = _date_parts(text)
    dt.date(year, month, day)  # raises ValueError for 2024-02-30
    return year, month, day


@lru_cache(maxsize=90_000)
def _cached_time(text: str) -> tuple[int, int, int]:
    hour, minute, second = (int(part) for part in (text.split(":") + ["0"])[:3])
    dt.time(hour, minute, second)  # raises ValueError for 25:00
    return hour, minute, second


def parse_past_datetime(raw: str) -> dt.datetime:
    """parse_datetime, refusing times more than a day after the import started."""
    return parse_datetime(raw, latest=LATEST_ACCEPTED.get())


def parse_datetime(raw: str, *, latest: dt.datetime | None = None) -> dt.datetime:
    """An aware datetime in Asia/Shanghai; a time without zone is Beijing time, one with its
    offset (ISO 8601) is converted."""
    # Fast path for YYYY-MM-DD[ HH:MM[:SS]]: an order file repeats its dates
    # and times endlessly, so each part is checked once and then looked up.
    if len(raw) in (10, 16, 19) and raw[4] in "-/" and raw[7] == raw[4] and raw[10:11] in ("", " ", "T"):
        time_text = raw[11:]
        if not time_text or (time_text[2:3] == ":" and time_text.replace(":", "").isdigit()):
            try:
                year, month, day = _cached_date(raw[:10])
                hour, minute, second = _cached_time(time_text) if time_text else (0, 0, 0)
            except ValueError:
                raise CellError(_("no such date or time")) from None
            value = dt.datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)
            return _checked(value, latest)
    zoned = _ZONED.match(raw)
    if zoned:
        raw, zone = zoned.groups()
    try:
        year, month, day, hour, minute, second = _date_parts(raw)
    except CellError:
        raise CellError(
            _(
                "not a date and time: use YYYY-MM-DD HH:MM[:SS] (Beijing time; YYYY/MM/DD, YYYYMMDD or YYYY年M月D日 too) "
                "or ISO 8601 with an offset, such as 2026-11-29T20:00:00+08:00"
            )
        ) from None
    try:
        zone_info = dt.datetime.strptime(zone, "%z").tzinfo if zoned else SHANGHAI  # Z, +08:00, +0800
        value = dt.datetime(year, month, day, hour, minute, second, tzinfo=zone_info).astimezone(SHANGHAI)
    except ValueError:
        raise CellError(_("no such date or time")) from None
    return _checked(value, latest)


def _checked(value: dt.datetime, latest: dt.datetime | None) -> dt.datetime:
    earliest = EARLIEST_ACCEPTED.get()
    if value < earliest:
        raise CellError(
            _("dates before %(date)s are not accepted (the setting CRM_EARLIEST_DATE)") % {"date": earliest.date().isoformat()}
        )
    if latest is not None and value > latest:
        raise CellError(_("the time lies in the future"))
    return value


def parse_date(raw: str) -> dt.date:
    year, month, day, hour, minute, second = _date_parts(raw)
    try:
        value = dt.date(year, month, day)
        dt.time(hour, minute, second)  # a time after the date is dropped, but only a real one
    except ValueError:
        raise CellError(_("no such date")) from None
    if value.year < 1900:
        raise CellError(_("dates before 1900 are not accepted"))
    return value


_MONEY_STRIP = str.maketrans("", "", "¥￥, 元")  # ¥1,280.00, 128.50元


def parse_money(raw: str, *, max_digits: int = 12) -> Decimal:
    """A non-negative amount in yuan with at most two decimals; ¥, 元 and thousands separators allowed."""
    try:
        value = Decimal(raw.translate(_MONEY_STRIP))
    except InvalidOperation:
        raise CellError(_("not an amount")) from None
    if not value.is_finite():
        raise CellError(_("not an amount"))
    if value < 0:
        raise CellError(_("an amount cannot be negative"))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        if value != value.quantize(Decimal("0.01")):
            raise CellError(_("at most two decimals (fen)"))
        value = value.quantize(Decimal("0.01"))
    if value >= Decimal(10) ** (max_digits - 2):
        raise CellError(_("the amount is too large"))
    return value


def parse_positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        try:
            as_decimal = Decimal(raw)
        except InvalidOperation:
            raise CellError(_("not a whole number")) from None
        if not as_decimal.is_finite() or as_decimal != as_decimal.to_integral_value():
            raise CellError(_("not a whole number")) from None
        value = int(as_decimal)
    if value < 1:
        raise CellError(_("must be 1 or more"))
    if value > 1_000_000:
        raise CellError(_("the number is too large"))
    return value


_TRUE = {"1", "true", "yes", "y", "是", "t", "同意"}
_FALSE = {"0", "false", "no", "n", "否", "f", "不同意"}


def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CellError(_("use 1 or 0"))


_GENDERS = {"f": "F", "女": "F", "female": "F", "m": "M", "男": "M", "male": "M", "u": "U", "未知": "U", "": "U"}


def parse_gender(raw: str) -> str:
    try:
        return _GENDERS[raw.lower()]
    except KeyError:
        raise CellError(_("use F/M or 女/男")) from None


def parse_mobile(raw: str) -> str:
    mobile = normalise_cn_mobile(raw)
    if not CN_MOBILE_RE.match(mobile):
        raise CellError(_("a mainland mobile number has 11 digits and starts with 13–19"))
    return mobile


def parse_email(raw: str) -> str:
    try:
        validate_email(raw)
    except ValidationError:
        raise CellError(_("not an email address")) from None
    return raw.lower()


def text_parser(max_length: int):
    def parse(raw: str) -> str:
        if len(raw) > max_length:
            raise CellError(_("longer than %(max)d characters") % {"max": max_length})
        return raw

    return parse


def choice_parser(mapping: dict[str, str], hint: str):
    lowered = {key.lower(): value for key, value in mapping.items()}

    def parse(raw: str) -> str:
        try:
            return lowered[raw.lower()]
        except KeyError:
            raise CellError(str(hint)) from None

    return parse


def age_band_for(birthday: dt.date, today: dt.date) -> str:
    age = today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))
    if age < 18:
        return ""
    if age < 25:
        return "18-24"
    if age < 35:
        return "25-34"
    if age < 45:
        return "35-44"
    if age < 55:
        return "45-54"
    return "55+"
