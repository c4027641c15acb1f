"""What the bench scripts share: Django's set-up and the figures they hand to
bench/run_all.py, which gathers them into one table.

A script calls record(...) for each headline figure; when run by run_all (the
BENCH_FIGURES variable names a file), the figure is appended there as one JSON
line, otherwise record() does nothing and the script's own table is all."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
OUT = ROOT / "data" / "bench"
# What autovacuum would do in a day: the recompute rewrote every metrics row (and a
# stopped run leaves as many dead ones); unvacuumed, the floor's UPDATE took 84 s, not 7.
VACUUMED = ("segments_membermetrics", "segments_circlemembership", "segments_tierchange", "crm_consent", "campaigns_delivery",
            "campaigns_coupon", "crm_order", "crm_orderline", "crm_member", "crm_engagementevent")


def bench_pg() -> str:
    return os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def bench_env(database: str) -> dict[str, str]:
    """The environment of the scripts an orchestrator (run_all, scale) runs against one database."""
    return {
        **os.environ, "DEBUG": "1", "DATABASE_URL": f"{bench_pg()}/{database}",
        "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14"),
        "BENCH_PG": bench_pg(), "SECRET_KEY": "bench", "CRM_LANGUAGE": "zh-hans",
    }


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(f"{bench_pg().replace('postgres://', 'postgresql://')}/postgres", autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def database_made_again(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{bench_pg().replace('postgres://', 'postgresql://')}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def seed_steps(members: int, as_of: str) -> list[tuple[str, list[str]]]:
    """(name, command) of building a data set in an empty database: migrate, seed_demo, the first recompute."""
    return [
        ("migrate", [PYTHON, "manage.py", "migrate", "-v0"]),
        ("seed", [PYTHON, "manage.py", "seed_demo", "--members", str(members), "--as-of", as_of]),
        ("first recompute", [PYTHON, "manage.py", "recompute_tiers", "--as-of", as_of, "--tiers-only"]),
    ]


def vacuum_command() -> list[str]:
    # psql runs a -c of several statements as one transaction, where VACUUM may not run: one -c each.
    return [PYTHON, "manage.py", "dbshell", "--", *(part for table in VACUUMED for part in ("-c", f"VACUUM ANALYZE {table}"))]


def require_postgres_and_redis() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
        sys.exit("set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)")


def django_setup(*, debug: bool = True, **environment: str) -> None:
    """Every bench's Django: the product's settings, DEBUG on unless debug=False
    (run_all sets it for all), and environment defaults of the script's own."""
    for name, value in {"DJANGO_SETTINGS_MODULE": "crm.settings", **({"DEBUG": "1"} if debug else {}), **environment}.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


def record(figure: str, value: str, *, target: str = "", met: bool | None = None, against: str = "") -> None:
    """One row of run_all's table: what was measured, its value, the target, whether it was met, and the floor or peer it is read against."""
    path = os.environ.get("BENCH_FIGURES")
    if not path:
        return
    row = {"bench": Path(sys.argv[0]).stem, "figure": figure, "value": value, "target": target, "met": met, "against": against}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def print_rows(rows: list[tuple[str, str, str]]) -> None:
    """A script's own table: measure, time, note."""
    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'measure'.ljust(width)} | {'time':>12} | note")
    print(f"{'-' * width}-|-{'-' * 12}-|-----")
    for name, value, note in rows:
        print(f"{name.ljust(width)} | {value:>12} | {note}")


def percentile(sorted_values: list[float], share: float) -> float:
    """The nearest-rank percentile of values already sorted."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(share * len(sorted_values))) - 1))]


def bench_campaign(name: str, *, tiers: list[str] | None = None, circles: list[str] | None = None):
    """A fresh approved SMS campaign (A/B, a ¥10 coupon each) to the given tiers
    or circles (every tier when neither), the previous run of the same name
    deleted; every member with a mobile gets SMS consent."""
    from django.db import connection

    from campaigns.models import Campaign, CampaignStatus, CouponKind, MessageTemplate, Variant
    from segments.models import Circle, Tier

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_consent (member_id, channel, granted, changed_at, source) "
            "SELECT id, 'sms', true, now(), 'bench' FROM crm_member WHERE mobile <> '' AND erased_at IS NULL "
            "ON CONFLICT (member_id, channel) DO UPDATE SET granted = true WHERE crm_consent.granted IS DISTINCT FROM true"
        )
        # As an import of that size does: planned on the unanalyzed million, the launch ran for ten minutes.
        cursor.execute("ANALYZE crm_consent")
        # The previous run's rows, in SQL: the ORM's cascade would load millions of objects.
        for table in ("campaigns_coupon", "campaigns_delivery"):
            cursor.execute(f"DELETE FROM {table} WHERE campaign_id IN (SELECT id FROM campaigns_campaign WHERE name = %s)", [name])  # nosec B608
    Campaign.objects.filter(name=name).delete()
    template, _ = MessageTemplate.objects.get_or_create(
        name="bench: 补货提醒",
        defaults={"body": "{{ salutation }}，您常买的{{ usual_product }}补货啦{% if next_tier %}，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员{% endif %}。"
                          "送您{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效"},
    )
    campaign = Campaign.objects.create(name=name, status=CampaignStatus.SCHEDULED, coupon_kind=CouponKind.AMOUNT, coupon_value=10, coupon_days=7)
    if circles:
        campaign.target_circles.set(Circle.objects.filter(name__in=circles))
    else:
        campaign.target_tiers.set(Tier.objects.filter(code__in=tiers) if tiers else Tier.objects.all())
    Variant.objects.create(campaign=campaign, label="A", template=template, share=50)
    Variant.objects.create(campaign=campaign, label="B", template=template, share=50)
    return campaign


class relaxed_policy:  # noqa: N801 - used as a context manager
    """Quiet hours, the usual-hour wait, the cap and the rate limit off for a bench run; the policy restored afterwards."""

    FIELDS = ("quiet_start", "quiet_end", "usual_hour", "cap_messages", "rate_sms")

    def __enter__(self):
        import datetime as dt

        from campaigns.models import SendingPolicy

        policy = SendingPolicy.current()
        self.saved = {field: getattr(policy, field) for field in self.FIELDS}
        SendingPolicy.objects.filter(pk=policy.pk).update(quiet_start=dt.time(0), quiet_end=dt.time(0), usual_hour=False, cap_messages=10_000, rate_sms=0)
        policy.refresh_from_db()
        assert not policy.usual_hour and policy.quiet_start == policy.quiet_end, "another run restored the policy: run one bench at a time"
        return policy

    def __exit__(self, *exc) -> None:
        from campaigns.models import SendingPolicy

        SendingPolicy.objects.filter(pk=1).update(**self.saved)


class send_workers:  # noqa: N801 - used as a context manager
    """`count` Celery worker processes (solo pool) on the configured broker, ready when the block starts, ended after it."""

    def __init__(self, count: int, name: str = "bench", **environment: str) -> None:
        self.count, self.name, self.environment = count, name, environment
        self.processes: list = []

    def __enter__(self) -> "send_workers":
        import subprocess

        from crm import celery_app

        celery_app.control.purge()
        env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0", **self.environment}
        command = [sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool", "solo", "-l", "warning", "--without-gossip", "--without-mingle"]
        self.processes = [subprocess.Popen([*command, "-n", f"{self.name}{n}@%h"], cwd=ROOT, env=env) for n in range(self.count)]
        for _ in range(60):
            if len(celery_app.control.ping(timeout=1.0) or []) >= self.count:
                break
        return self

    def peak_rss_mb(self) -> list[float]:
        """Each worker's peak resident memory so far (VmHWM)."""
        peaks = []
        for process in self.processes:
            status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
            peaks.extend(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
        return peaks

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=60)
