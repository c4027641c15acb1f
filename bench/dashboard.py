"""Dashboard benchmark: building the nightly KPI snapshot, and the admin home
(the dashboard) served from it, on a big data set.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        .venv/bin/python bench/dashboard.py [--repeat 30] [--days 30]

Seed the database first (seed_demo --members 1000000, recompute_tiers). The
run builds --days past snapshots (one timed), so that the trend charts have
points, then requests the home page --repeat times after three warm-up
requests as a superuser and as a group leader (Django's test client in this
process: server time, queries and rendering). Target: under 300 ms."""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from _common import django_setup, record  # noqa: E402

django_setup(debug=False, SECRET_KEY="bench", ALLOWED_HOSTS="testserver", CRM_LANGUAGE="zh-hans")

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns.dashboard.kpi import snapshot_build
from campaigns.dashboard.models import KpiSnapshot
from crm import roles  # noqa: E402
from crm.models import GroupLeader, Member, Order  # noqa: E402

TARGET_MS = 300


def timed(client: Client, repeat: int) -> tuple[list[float], int, int]:
    for _ in range(3):
        client.get("/admin/")
    timings, queries, size = [], 0, 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get("/admin/")
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and b"crm-dashboard" in response.content
        queries, size = max(queries, len(captured.captured_queries)), len(response.content)
    return sorted(timings), queries, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--days", type=int, default=30, help="past snapshots to build for the trends (untimed but the first)")
    options = parser.parse_args()
    today = timezone.localdate()
    print(f"{Member.objects.count():,} members, orders ≈ {Order.objects.order_by('-id').values_list('id', flat=True).first():,} on {connection.vendor}")
    started = time.perf_counter()
    snapshot_build(today)
    build_s = time.perf_counter() - started
    for back in range(1, options.days):
        if not KpiSnapshot.objects.filter(day=today - dt.timedelta(days=back)).exists():
            snapshot_build(today - dt.timedelta(days=back))
    rows = KpiSnapshot.objects.filter(day__gt=today - dt.timedelta(days=90)).count()
    admin_user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    leader = GroupLeader.objects.select_related("user").order_by("id").first()
    leader.user.groups.add(Group.objects.get(name=roles.LEADER))
    print(f"snapshot rows read by the trends (90 days): {rows}")
    print()
    print(f"| {'measure':<34} | {'p50 ms':>7} | {'p95 ms':>7} | {'max ms':>7} | {'queries':>7} |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    print(f"| {'snapshot build (nightly, one day)':<34} | {build_s * 1000:>7.0f} | {'':>7} | {'':>7} | {'':>7} |")
    record("dashboard: nightly KPI snapshot build", f"{build_s:.1f} s")
    misses = []
    for name, user in (("dashboard (HQ, whole base)", admin_user), ("dashboard (group leader, own line)", leader.user)):
        client = Client()
        client.force_login(user)
        timings, queries, _size = timed(client, options.repeat)
        p95 = timings[max(int(len(timings) * 0.95) - 1, 0)]
        if p95 > TARGET_MS:
            misses.append(name)
        print(f"| {name:<34} | {statistics.median(timings):>7.1f} | {p95:>7.1f} | {timings[-1]:>7.1f} | {queries:>7} |")
        record(f"{name} p95", f"{p95:.0f} ms", target=f"< {TARGET_MS} ms", met=p95 < TARGET_MS, against=f"p50 {statistics.median(timings):.0f} ms, {queries} queries")
    print()
    print(f"target dashboard p95 < {TARGET_MS} ms: " + ("met" if not misses else "missed by " + ", ".join(misses)))


if __name__ == "__main__":
    main()
