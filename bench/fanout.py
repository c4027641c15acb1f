"""Fan-out benchmark: one campaign to every member of the database, rendered
(salutation, usual product, tier gap, a per-member coupon) and delivered
through the file backend by worker processes, PostgreSQL + Redis.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/fanout.py [--workers 2]

Seed the database first (bench/recompute.py's docstring): members with orders,
tiers and circles. The benchmark grants every member with a mobile SMS
consent, switches quiet hours, the usual-hour wait, the cap and the rate
limit off for its run (it restores the policy afterwards), deletes the
previous run's campaign, and times from the launch (outbox INSERT) until no
row is queued, claimed or sending. It prints messages per second end to end
and the peak memory of the launching process and of each worker."""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from _common import bench_campaign, django_setup, record, relaxed_policy, require_postgres_and_redis, send_workers

NAME = "bench: fan-out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    require_postgres_and_redis()
    django_setup(CRM_DATA_DIR=tempfile.mkdtemp(prefix="crm-fanout-"))
    with relaxed_policy():
        campaign = bench_campaign(NAME)
        created, started, launched, finished, worker_peaks = send(campaign, args.workers)
    print_table(campaign, args.workers, created, started, launched, finished, worker_peaks)


def send(campaign, worker_count: int) -> tuple:
    """Launch with the workers ready; return (rows, started, launched, finished, worker peak RSS)."""
    from campaigns.models import PENDING, Delivery
    from campaigns.services import campaign_launch

    with send_workers(worker_count) as workers:
        started = time.perf_counter()
        created = campaign_launch(campaign=campaign, force=True)
        launched = time.perf_counter()
        while Delivery.objects.filter(campaign=campaign, status__in=PENDING).exists():
            time.sleep(0.5)
        finished = time.perf_counter()
        return created, started, launched, finished, workers.peak_rss_mb()


def print_table(campaign, worker_count: int, created: int, started: float, launched: float, finished: float, worker_peaks: list[float]) -> None:
    from django.conf import settings
    from django.db.models import Count

    from campaigns.models import Delivery, DeliveryStatus

    counts = dict(Delivery.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")))
    sent = counts.get(DeliveryStatus.SENT, 0)
    sink = Path(settings.DATA_DIR) / "outbox" / "sms.jsonl"
    lines = sum(1 for _ in sink.open()) if sink.exists() else 0
    elapsed = finished - started
    print(f"PostgreSQL + Redis, {worker_count} worker processes (solo pool), batches of {settings.CAMPAIGN_BATCH}")
    rows = [
        ("outbox rows written by the launch", f"{created:,}", f"{launched - started:.1f} s"),
        ("messages sent (file sink lines)", f"{sent:,} ({lines:,})", f"{finished - launched:.1f} s after the launch"),
        ("other outcomes", ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != DeliveryStatus.SENT) or "none", ""),
        ("end to end, launch to the last message", f"{sent / elapsed:,.0f} messages/s", f"{elapsed:.1f} s"),
        ("peak memory: launching process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", ""),
        *((f"peak memory: worker {n + 1}", f"{peak:.0f} MB", "") for n, peak in enumerate(worker_peaks)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | figure | time |\n|{'-' * (width + 2)}|---|---|")
    for what, figure, when in rows:
        print(f"| {what:<{width}} | {figure} | {when} |")
    record("fan-out, end to end (file sink)", f"{sent / elapsed:,.0f} messages/s", target="≥ 5,000 messages/s", met=sent / elapsed >= 5000,
           against="the gateway's cap: 5,000 requests/s per Aliyun SMS account")
    record("fan-out: the launch's outbox INSERT", f"{created / (launched - started):,.0f} rows/s", against=f"{created:,} rows in {launched - started:.1f} s")
    record("fan-out: peak memory per worker", f"{max(worker_peaks):.0f} MB")


if __name__ == "__main__":
    main()
