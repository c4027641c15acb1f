"""Journeys and the leaders' worklist on a big data set: one journeys pass
(enrol, exits, due steps into the outbox), the same pass again (nothing to
do: what every 10-minute beat run costs), and the morning worklist build.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        .venv/bin/python bench/journeys.py

Seed the database first (seed_demo --members 1000000, recompute_tiers). The
outbox rows are written but not handed to workers (dispatch is skipped), and
the run writes enrolments, deliveries and worklist items into the database."""

from __future__ import annotations

import time
from unittest import mock

from _common import django_setup, record  # noqa: E402

django_setup(debug=False, SECRET_KEY="bench", CRM_LANGUAGE="zh-hans")

from django.db import connection  # noqa: E402

import campaigns.sending  # noqa: E402
from campaigns.journeys.services import journeys_run
from campaigns.worklist.models import WorklistItem
from campaigns.worklist.services import worklist_build
from crm.models import Member  # noqa: E402


def main() -> None:
    print(f"{Member.objects.count():,} members on {connection.vendor}")
    print()
    print(f"| {'step':<40} | {'seconds':>8} | {'result':<50} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 52}|")
    with mock.patch.object(campaigns.sending, "dispatch", lambda **kwargs: 0):
        for name in ("journeys pass", "journeys pass again (nothing new)"):
            started = time.perf_counter()
            summary = journeys_run()
            seconds = time.perf_counter() - started
            print(f"| {name:<40} | {seconds:>8.1f} | {str(summary)[:50]:<50} |")
            record(name, f"{seconds:.1f} s", against=str(summary)[:80])
    started = time.perf_counter()
    added = worklist_build()
    leaders = WorklistItem.objects.values("leader").distinct().count()
    seconds = time.perf_counter() - started
    print(f"| {'worklist build (every leader)':<40} | {seconds:>8.1f} | {f'{added:,} items for {leaders:,} leaders':<50} |")
    record("worklist build (every leader)", f"{seconds:.1f} s", against=f"{added:,} items for {leaders:,} leaders")


if __name__ == "__main__":
    main()
