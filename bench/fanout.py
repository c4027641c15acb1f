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
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NAME = "bench: fan-out"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("CRM_DATA_DIR", tempfile.mkdtemp(prefix="crm-fanout-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
        sys.exit("set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.db.models import Count

    from campaigns.models import Campaign, CampaignStatus, CouponKind, Delivery, DeliveryStatus, MessageTemplate, SendingPolicy, Variant
    from campaigns.services import campaign_launch
    from crm import celery_app
    from segments.models import Tier

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_consent (member_id, channel, granted, changed_at, source) "
            "SELECT id, 'sms', true, now(), 'bench' FROM crm_member WHERE mobile <> '' AND erased_at IS NULL "
            "ON CONFLICT (member_id, channel) DO UPDATE SET granted = true"
        )
        # The previous run's rows, in SQL: the ORM's cascade would load two million objects.
        cursor.execute(
            "DELETE FROM campaigns_coupon WHERE campaign_id IN (SELECT id FROM campaigns_campaign WHERE name = %s)", [NAME]
        )
        cursor.execute(
            "DELETE FROM campaigns_delivery WHERE campaign_id IN (SELECT id FROM campaigns_campaign WHERE name = %s)", [NAME]
        )
    Campaign.objects.filter(name=NAME).delete()
    policy = SendingPolicy.current()
    saved = {f: getattr(policy, f) for f in ("quiet_start", "quiet_end", "usual_hour", "cap_messages", "rate_sms")}
    SendingPolicy.objects.filter(pk=policy.pk).update(
        quiet_start=dt.time(0), quiet_end=dt.time(0), usual_hour=False, cap_messages=10_000, rate_sms=0
    )
    policy.refresh_from_db()
    assert not policy.usual_hour and policy.quiet_start == policy.quiet_end, "another run restored the policy: run one bench at a time"
    template, _ = MessageTemplate.objects.get_or_create(
        name="bench: 补货提醒",
        defaults={"body": "{{ salutation }}，您常买的{{ usual_product }}补货啦{% if next_tier %}，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员{% endif %}。"
                          "送您{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效"},
    )
    campaign = Campaign.objects.create(
        name=NAME, status=CampaignStatus.SCHEDULED, coupon_kind=CouponKind.AMOUNT, coupon_value=10, coupon_days=7
    )
    campaign.target_tiers.set(Tier.objects.all())
    Variant.objects.create(campaign=campaign, label="A", template=template, share=50)
    Variant.objects.create(campaign=campaign, label="B", template=template, share=50)

    celery_app.control.purge()
    env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool", "solo", "-l", "warning", "--without-gossip", "--without-mingle",
             "-n", f"bench{n}@%h"],
            cwd=ROOT, env=env,
        )
        for n in range(args.workers)
    ]
    try:
        for _ in range(60):
            if len(celery_app.control.ping(timeout=1.0) or []) >= args.workers:
                break
        started = time.perf_counter()
        created = campaign_launch(campaign=campaign, force=True)
        launched = time.perf_counter()
        busy = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)
        while Delivery.objects.filter(campaign=campaign, status__in=busy).exists():
            time.sleep(0.5)
        finished = time.perf_counter()
        worker_peaks = [peak_rss_mb(w.pid) for w in workers]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        SendingPolicy.objects.filter(pk=policy.pk).update(**saved)

    counts = dict(Delivery.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")))
    sent = counts.get(DeliveryStatus.SENT, 0)
    sink = Path(settings.DATA_DIR) / "outbox" / "sms.jsonl"
    lines = sum(1 for _ in sink.open()) if sink.exists() else 0
    elapsed = finished - started
    print(f"PostgreSQL + Redis, {args.workers} worker processes (solo pool), batches of {settings.CAMPAIGN_BATCH}")
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


if __name__ == "__main__":
    main()
