"""The business day: every day rule of DOMAIN.md counts Beijing days, whose
edges are local midnights."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.utils import timezone


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))


def day_end(day: dt.date) -> dt.datetime:
    """The last instant of a business day: where a run as of that day records its
    moves, so that "the latest move before the next midnight" reads them."""
    return local_midnight(day + dt.timedelta(days=1)) - dt.timedelta(microseconds=1)


def moves_at(as_of: dt.date, now: dt.datetime) -> dt.datetime:
    """When a run as of as_of records its moves: now for today (or later), the
    end of as_of for a past day (a recompute --as-of D, a history rebuild)."""
    return day_end(as_of) if as_of < timezone.localdate(now) else now
