"""History rebuild benchmark: a year of tier history at weekly steps, rebuilt
from the orders, against one full recompute measured in the same run.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        .venv/bin/python bench/history.py [--weeks 52] [--snapshots N]

Seed the database first (run_all.py --seed, or seed_demo --members 1000000 and
recompute_tiers). The run times a full recompute as of today (the peer: its
moves and memberships stand as they were, nothing moves on a second run the
same day), then history_rebuild's tier part from today - 7 × weeks days to
yesterday, weekly (its earlier rebuilt moves replaced), then the KPI snapshots
of N of its step days (all of them by default), two at a time as history_rebuild
builds them; the figure scales to every step day. Target: the year at weekly steps within 10× the
full recompute."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from _common import django_setup, print_rows, record  # noqa: E402

django_setup(SECRET_KEY="bench", CRM_LANGUAGE="zh-hans")

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns.dashboard.history import snapshots_build  # noqa: E402
from crm.models import Member, Order  # noqa: E402
from segments.history import tiers_history_rebuild  # noqa: E402
from segments.models import ChangeReason, TierChange  # noqa: E402
from segments.services import tiers_recompute  # noqa: E402

TARGET_RATIO = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--snapshots", type=int, default=None, help="step days to snapshot (default: every step day)")
    options = parser.parse_args()
    today = timezone.localdate()
    print(f"{Member.objects.count():,} members, orders ≈ {Order.objects.order_by('-id').values_list('id', flat=True).first():,} on {connection.vendor}")

    started = time.perf_counter()
    run = tiers_recompute(as_of=today, refit=False)
    full = time.perf_counter() - started
    print(f"full recompute: {full:.1f} s ({run.members:,} members; {', '.join(f'{k} {v:.1f}' for k, v in run.timings.items())})", flush=True)

    start = today - dt.timedelta(weeks=options.weeks)
    steps: list[float] = []
    last = [time.perf_counter()]

    def progress(done: int, of: int) -> None:
        now = time.perf_counter()
        steps.append(now - last[0])
        last[0] = now
        if done in (1, 2) or done % 10 == 0 or done == of:
            print(f"  step {done}/{of}: {steps[-1]:.1f} s", flush=True)

    started = time.perf_counter()
    rebuilt = tiers_history_rebuild(start=start, step="week", progress=progress)
    tiers = time.perf_counter() - started
    moves = TierChange.objects.filter(reason=ChangeReason.REBUILD).count()
    print(f"tier history: {tiers:.1f} s for {len(rebuilt.days)} steps ({rebuilt.days[0]} to {rebuilt.days[-1]}), {rebuilt.moves:,} moves; "
          f"after the last step ('in tier since' carried back, commit) {tiers - sum(steps):.1f} s", flush=True)

    days = rebuilt.days if options.snapshots is None else rebuilt.days[-options.snapshots:]
    started = time.perf_counter()

    def done(number: int) -> None:
        if number in (1, 2) or number % 10 == 0:
            print(f"  snapshot {number}/{len(days)}: {time.perf_counter() - started:.1f} s so far", flush=True)

    snapshots_build(days, progress=done)  # as history_rebuild builds them (two at once on PostgreSQL)
    snapshots = time.perf_counter() - started
    per_snapshot = snapshots / len(days)
    whole = tiers + per_snapshot * len(rebuilt.days)
    measured = "" if len(days) == len(rebuilt.days) else f" ({len(days)} measured, scaled to {len(rebuilt.days)})"

    rows = [
        ("full recompute (peer)", f"{full:.1f} s", f"{run.members:,} members"),
        (f"tier history, {len(rebuilt.days)} weekly steps", f"{tiers:.1f} s", f"{tiers / full:.2f}× the full recompute; first step {steps[0]:.1f} s, later ones median {sorted(steps[1:])[len(steps[1:]) // 2]:.1f} s; {moves:,} moves"),
        ("KPI snapshots of the step days", f"{per_snapshot * len(rebuilt.days):.1f} s", f"{per_snapshot:.1f} s each{measured}"),
        ("the whole rebuild", f"{whole:.1f} s", f"{whole / full:.2f}× the full recompute (target ≤ {TARGET_RATIO}×)"),
    ]
    print_rows(rows)
    record("a year of tier history at weekly steps", f"{tiers:.1f} s = {tiers / full:.2f}× full recompute", target=f"≤ {TARGET_RATIO}×",
           met=tiers <= TARGET_RATIO * full, against=f"full recompute {full:.1f} s, same run")
    record("the same with the KPI snapshots of its step days", f"{whole:.1f} s = {whole / full:.2f}× full recompute", target=f"≤ {TARGET_RATIO}×",
           met=whole <= TARGET_RATIO * full, against=f"{per_snapshot:.1f} s a snapshot{measured}")


if __name__ == "__main__":
    main()
