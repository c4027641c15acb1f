"""Loyalty benchmark: the first award of growth value and points over the whole
history against its floor, the nightly run after a 2% day (tiers and ledgers)
against the full run, one member's update after an order (tiers and ledgers),
and reading a member's balances.

PostgreSQL, 1M members / ~20M orders (bench/run_all.py --seed, or seeded as
bench/recompute.py says), tiers computed:
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench .venv/bin/python bench/loyalty.py --as-of 2026-12-05

The floor is one INSERT ... SELECT of one row per paid order into a table
shaped like a ledger (its columns, its unique key and member index), timed
alone in the same run and rolled back. The first award writes two such
ledgers (growth value and points: a row per paid order in each, plus the
registrations and events) and every member's balance, so it is read against
the floor and against twice the floor. The ledgers are emptied first, so each
run measures a first award; it stays, and the 2% day and the single-member
updates after it are rolled back."""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from _common import django_setup, percentile, print_rows, record


class Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--first-award-only", action="store_true", help="the floor and the first award, nothing after them")
    args = parser.parse_args()
    django_setup()
    run(args.as_of, args.samples, first_award_only=args.first_award_only)


def run(as_of: dt.date, samples: int, *, first_award_only: bool = False) -> None:
    from django.db import connection, transaction

    from crm.models import Order
    from loyalty import services
    from loyalty.models import Balance
    from recompute import _sample_ids, _two_percent_day
    from segments.days import local_midnight
    from segments.services import tiers_recompute, tiers_recompute_nightly

    rows: list[tuple[str, str, str]] = []
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE loyalty_growthentry, loyalty_pointsentry, loyalty_balance, loyalty_redemption, loyalty_adjustment, loyalty_settlerun")
        cursor.execute("SELECT COUNT(*) FROM crm_order WHERE status = 'paid'")
        paid = cursor.fetchone()[0]
    print(f"{paid:,} paid orders")

    floor = _floor()
    rows.append(("floor: INSERT ... SELECT a ledger row per paid order", f"{floor:.1f} s", f"{paid:,} rows"))

    started = time.perf_counter()
    first = services.ledgers_settle()
    award = time.perf_counter() - started
    stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in first.timings.items())
    growth, points = first.timings["growth"], first.timings["points"]
    rows.append(("first award: both ledgers and every balance", f"{award:.1f} s",
                 f"{award / floor:.2f}× floor, {award / (2 * floor):.2f}× two floors (target ≤ 1.5× floor); {first.entries:,} entries; {stages}"))
    rows.append(("first award: growth value ledger", f"{growth:.1f} s", f"{growth / floor:.2f}× floor"))
    rows.append(("first award: points ledger", f"{points:.1f} s", f"{points / floor:.2f}× floor"))
    record("loyalty: first award over the whole history", f"{award:.1f} s = {award / floor:.2f}× floor ({award / (2 * floor):.2f}× two floors)",
           target="≤ 1.5× floor", met=award / floor <= 1.5,
           against=f"floor {floor:.1f} s (one ledger row per paid order), same run; two ledgers written: growth {growth / floor:.2f}×, points {points / floor:.2f}× floor; {stages}")
    if first_award_only:
        print_rows(rows)
        return
    with connection.cursor() as cursor:
        for table in ("loyalty_growthentry", "loyalty_pointsentry", "loyalty_balance"):
            cursor.execute(f"VACUUM ANALYZE {table}")  # nosec B608 - fixed names

    # The full runs the nightly is read against, timed in this run.
    started = time.perf_counter()
    tiers_recompute(as_of=as_of)
    full_tiers = time.perf_counter() - started
    started = time.perf_counter()
    services.ledgers_settle()  # everything already awarded: what a full settle costs on a settled ledger
    full_ledgers = time.perf_counter() - started
    full = full_tiers + full_ledgers
    rows.append(("full run: tiers + ledgers (settled)", f"{full:.1f} s", f"tiers {full_tiers:.1f} + ledgers {full_ledgers:.1f}"))
    # As bench/recompute.py does: the nightly comes a day after the weekly full run, when
    # autovacuum has long cleaned up after it (the full runs rewrote every metrics and
    # balance row); seconds later, unvacuumed, the nightly's tiers took 17.1 s, not 8.
    with connection.cursor() as cursor:
        for table in ("segments_membermetrics", "segments_circlemembership", "segments_tierchange", "loyalty_balance"):
            cursor.execute(f"VACUUM ANALYZE {table}")  # nosec B608 - fixed names

    next_day = as_of + dt.timedelta(days=1)
    try:
        with transaction.atomic():
            _two_percent_day(next_day)
            started = time.perf_counter()
            tiers_run = tiers_recompute_nightly(as_of=next_day)
            nightly_tiers = time.perf_counter() - started
            started = time.perf_counter()
            settled = services.ledgers_settle_nightly(now=local_midnight(next_day + dt.timedelta(days=1)) + dt.timedelta(hours=3, minutes=40))
            nightly_ledgers = time.perf_counter() - started
            nightly = nightly_tiers + nightly_ledgers
            rows.append(("nightly after a 2% day: the tiers' stages", f"{nightly_tiers:.1f} s",
                         f"{tiers_run.members:,} members; " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in tiers_run.timings.items())))
            rows.append(("nightly after a 2% day: tiers + ledgers", f"{nightly:.1f} s",
                         f"{nightly / full:.1%} of the full run (target ≤ 10%); tiers {nightly_tiers:.1f} + ledgers {nightly_ledgers:.1f} "
                         f"({settled.members:,} members settled, {settled.entries:,} entries; "
                         + ", ".join(f"{name} {seconds:.1f}" for name, seconds in settled.timings.items()) + ")"))
            record("loyalty: nightly after a 2% day, tiers and ledgers", f"{nightly:.1f} s = {nightly / full:.1%} of the full run", target="≤ 10%",
                   met=nightly / full <= 0.10, against=f"full run {full:.1f} s (tiers {full_tiers:.1f} + ledgers {full_ledgers:.1f}); ledgers {nightly_ledgers:.1f} s")
            raise Rollback
    except Rollback:
        pass

    latencies, ledger_only = [], []
    try:
        with transaction.atomic():
            for member_id in _sample_ids(samples):
                Order.objects.create(member_id=member_id, order_no=f"BENCH-L-{member_id}",
                                     ordered_at=local_midnight(as_of) + dt.timedelta(hours=10), amount=88)
                started = time.perf_counter()
                tiers_recompute(member_ids=[member_id], as_of=as_of, reason="order")
                middle = time.perf_counter()
                services.ledgers_settle(member_ids=[member_id])
                ended = time.perf_counter()
                latencies.append((ended - started) * 1000)
                ledger_only.append((ended - middle) * 1000)
            raise Rollback
    except Rollback:
        pass
    latencies.sort()
    ledger_only.sort()
    p95 = percentile(latencies, 0.95)
    rows.append(("one member after an order: tiers + ledgers", f"p95 {p95:.0f} ms",
                 f"p50 {statistics.median(latencies):.0f} ms; ledgers alone p95 {percentile(ledger_only, 0.95):.0f} ms (target < 50 ms)"))
    record("loyalty: one member after an order, tiers and ledgers", f"p95 {p95:.0f} ms", target="< 50 ms", met=p95 < 50,
           against=f"ledgers alone p95 {percentile(ledger_only, 0.95):.0f} ms")

    reads = []
    for member_id in _sample_ids(200):
        started = time.perf_counter()
        Balance.objects.filter(member_id=member_id).first()
        reads.append((time.perf_counter() - started) * 1000)
    reads.sort()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT * FROM loyalty_balance WHERE member_id = 12345")
        plan = " ".join(row[0].strip() for row in cursor.fetchall())
    rows.append(("read one member's balances", f"p95 {percentile(reads, 0.95):.2f} ms", plan[:90]))
    record("loyalty: read one member's balances", f"p95 {percentile(reads, 0.95):.2f} ms", target="one indexed row",
           met="Index Scan" in plan, against=plan[:80])

    print_rows(rows)


def _floor() -> float:
    """One ledger row per paid order, into a table like a ledger, timed alone and rolled back."""
    from django.db import connection, transaction

    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # A plain table, written to the WAL as the ledgers are (a temporary one is not), dropped by the rollback.
            cursor.execute("CREATE TABLE bench_ledger (LIKE loyalty_growthentry INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute("CREATE UNIQUE INDEX ON bench_ledger (rule, source_kind, source_id, seq)")
            cursor.execute("CREATE INDEX ON bench_ledger (member_id, occurred_at)")
            started = time.perf_counter()
            cursor.execute(
                """INSERT INTO bench_ledger (id, member_id, amount, rule, source_kind, source_id, seq, occurred_at, recorded_at, source_version)
                   SELECT o.id, o.member_id, 100, 'repeat_order', 'order', o.id, 0, o.ordered_at, now(), COALESCE(o.changed_at, 'epoch')
                     FROM crm_order o WHERE o.status = 'paid'"""
            )
            seconds = time.perf_counter() - started
            raise Rollback
    except Rollback:
        pass
    return seconds


if __name__ == "__main__":
    main()
