"""History from the orders: the tier history rebuilt (segments.history) and
the KPI snapshots of its steps, so that a shop that has just imported its past
sees trends and the migration matrix on the first screen.

One rebuild at a time, by a worker (history_rebuild_task) or in the
foreground (manage.py history_rebuild); its state is kept in the cache for the
admin page's progress bar."""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor

from django.core.cache import cache
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from campaigns.dashboard.kpi import snapshot_build
from crm.models import Order
from segments.history import RebuildError, Rebuilt, recorded_from, tiers_history_rebuild
from segments.models import TierChange

STATE_KEY = "dashboard:history_rebuild"
STATE_SECONDS = 24 * 3600
OFFER_MIN_DAYS = 30  # orders reaching this far before the recorded history: the import page offers a rebuild
SNAPSHOT_WORKERS = 2  # step days' snapshots built at once on PostgreSQL


def state() -> dict | None:
    """The running or last rebuild: status (queued, running, done, failed), done/of steps, message."""
    return cache.get(STATE_KEY)


def state_set(**values) -> None:
    cache.set(STATE_KEY, {**(state() or {}), **values}, STATE_SECONDS)


def is_running() -> bool:
    current = state()
    return bool(current and current.get("status") in ("queued", "running"))


def suggestion() -> dict | None:
    """What the import page offers: a rebuild from the earliest order (at most a
    year back, weekly) up to the recorded history, when the orders reach back
    more than OFFER_MIN_DAYS before it; None otherwise."""
    today = timezone.localdate()
    first_order = Order.objects.aggregate(first=Min("ordered_at"))["first"]
    if first_order is None:
        return None
    start = max(timezone.localdate(first_order), today - dt.timedelta(days=365))
    first_move = TierChange.objects.aggregate(first=Min("at"))["first"]  # rebuilt ones too: once rebuilt, no offer
    if first_move is not None and (timezone.localdate(first_move) - start).days < OFFER_MIN_DAYS:
        return None
    end = (recorded_from() or today) - dt.timedelta(days=1)
    if (end - start).days < OFFER_MIN_DAYS:
        return None
    return {"start": start, "end": end, "step": "week"}


def snapshots_build(days: list[dt.date], *, progress=None) -> None:
    """The KPI snapshot of each day. Days are independent: on PostgreSQL, outside a
    transaction, two connections build them at once (a snapshot is a few
    aggregate queries on one core; the machine has two)."""
    workers = min(SNAPSHOT_WORKERS, os.cpu_count() or 1) if connection.vendor == "postgresql" and not connection.in_atomic_block else 1
    if workers == 1:
        for number, day in enumerate(days, start=1):
            snapshot_build(day)
            if progress:
                progress(number)
        return

    def build(day: dt.date) -> None:
        try:
            snapshot_build(day)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for number, _done in enumerate(pool.map(build, days), start=1):
            if progress:
                progress(number)


def history_rebuild(*, start: dt.date, end: dt.date | None = None, step: str = "week", snapshots: bool = True) -> dict:
    """The tier history of the range, then a KPI snapshot for each step day.
    Returns what was done and how long each part took."""
    state_set(status="running", done=0, of=0, stage="tiers", message="", started=timezone.now().isoformat())
    try:
        began = time.perf_counter()
        rebuilt: Rebuilt = tiers_history_rebuild(start=start, end=end, step=step, progress=lambda done, of: state_set(done=done, of=of * 2 if snapshots else of))
        tiers_seconds = time.perf_counter() - began
        began = time.perf_counter()
        if snapshots:
            state_set(stage="snapshots")
            steps = len(rebuilt.days)
            snapshots_build(rebuilt.days, progress=lambda number: state_set(done=steps + number))
        snapshot_seconds = time.perf_counter() - began
    except RebuildError as error:
        state_set(status="failed", message=str(error))
        raise
    except Exception as error:
        state_set(status="failed", message=f"{type(error).__name__}: {error}"[:500])
        raise
    result = {
        "start": rebuilt.start.isoformat(), "end": rebuilt.end.isoformat(), "steps": len(rebuilt.days), "moves": rebuilt.moves,
        "clipped_from": rebuilt.clipped_from.isoformat() if rebuilt.clipped_from else None,
        "snapshots": len(rebuilt.days) if snapshots else 0,
        "tiers_seconds": round(tiers_seconds, 1), "snapshot_seconds": round(snapshot_seconds, 1),
    }
    state_set(status="done", message="", result=result)
    return result
