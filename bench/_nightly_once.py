"""Nightly recomputes after a 2% day, each rolled back, run as a worker runs
them (at CELERY_WORKER_NICE): bench/load.py's background work. Prints each
run's seconds as one JSON line.

    _nightly_once.py --as-of DAY [--runs N] [--until EPOCH_SECONDS]

Runs N times, or, with --until, until that time has passed (the run under way
finishes).

After each run it VACUUMs what the run left behind (the 2% day's orders and
lines, the metrics, circle memberships and tier changes it rewrote), as
autovacuum does after a real night: this machine's PostgreSQL runs with
autovacuum off, and seven runs' dead rows (over half the metrics table) made
the pages' reads, not the run, the load. The vacuum is background work too; its
seconds are printed apart from the run's."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

from _common import django_setup
from recompute import Rollback, _two_percent_day

WRITTEN = ("crm_order", "crm_orderline", "segments_membermetrics", "segments_circlemembership", "segments_tierchange")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, required=True, help="the day of the last full run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--until", type=float, default=None)
    args = parser.parse_args()
    django_setup()

    from django.db import connection, transaction

    from crm.celery import _yield_to_people
    from segments.services import tiers_recompute_nightly

    _yield_to_people()
    next_day = args.as_of + dt.timedelta(days=1)
    done = 0
    while (args.until is None and done < args.runs) or (args.until is not None and (done == 0 or time.time() < args.until)):
        try:
            with transaction.atomic():
                _two_percent_day(next_day)
                started = time.perf_counter()
                run = tiers_recompute_nightly(as_of=next_day)
                seconds = round(time.perf_counter() - started, 3)
                raise Rollback
        except Rollback:
            pass
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for table in WRITTEN:
                cursor.execute(f"VACUUM {table}")  # nosec B608 - fixed names
        print(json.dumps({"seconds": seconds, "members": run.members, "vacuum_seconds": round(time.perf_counter() - started, 3)}), flush=True)
        done += 1


if __name__ == "__main__":
    main()
