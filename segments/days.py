"""The business day: every day rule of DOMAIN.md counts Beijing days, whose
edges are local midnights."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))
