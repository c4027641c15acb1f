"""Calls counted per client, operation and hour: in each server process, added
to the database every few seconds (one statement per operation), so that a
thousand calls a second do not each write a row. A process that dies loses at
most the last few seconds of its counts."""

from __future__ import annotations

import threading
import time
from collections import Counter

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

_lock = threading.Lock()
_counts: Counter = Counter()
_last_flush = [time.monotonic()]


def count(client_id: int, operation: str, status: int) -> None:
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    with _lock:
        _counts[(client_id, operation, hour, 400 <= status < 500)] += 1
        due = time.monotonic() - _last_flush[0] >= getattr(settings, "API_USAGE_FLUSH_SECONDS", 5)
    if due:
        flush()


def flush() -> None:
    with _lock:
        counts = dict(_counts)
        _counts.clear()
        _last_flush[0] = time.monotonic()
    merged: dict[tuple, list[int]] = {}
    for (client_id, operation, hour, refused), calls in counts.items():
        row = merged.setdefault((client_id, operation, hour), [0, 0])
        row[0] += calls
        row[1] += calls if refused else 0
    if not merged:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for (client_id, operation, hour), (calls, refused) in merged.items():
            cursor.execute(
                "INSERT INTO api_apiusage (client_id, operation, hour, calls, refused) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (client_id, operation, hour) DO UPDATE SET calls = api_apiusage.calls + excluded.calls, "
                "refused = api_apiusage.refused + excluded.refused",
                [client_id, operation, connection.ops.adapt_datetimefield_value(hour), calls, refused],
            )

