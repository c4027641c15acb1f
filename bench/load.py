"""Admin latency under load: staff sessions (20 by default) browse the admin
over loopback, served by gunicorn, while a campaign to about 100,000 members
(the 高价值流失 circle) is being sent by two Celery workers on the same machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/load.py [--sessions 20] [--seconds 90] [--think 0.5 2.0] [--server-workers 3]

Seed the database first (seed_demo --members 1000000, then recompute_tiers).
Each session is a thread with its own logged-in staff user, keeping one
request in flight at a time and pausing a random think time between clicks
(staff read a page before the next click; --think 0 0 hammers instead). Its
pages, drawn at random: the member list plain and filtered (tier, circle,
churn risk, community, has ordered), a member's page, the order list plain and
filtered, the dashboard (admin home) and a circle's live count before saving
(a POST, as the circle form sends it). Latency is measured by the client, so it
includes gunicorn's queue. The load generator stops by itself after
--seconds; the campaign is sent to the end and its rate is printed too."""

from __future__ import annotations

import argparse
import http.client
import os
import random
import secrets
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from urllib.parse import urlencode

from _common import ROOT, bench_campaign, django_setup, percentile, record, relaxed_policy, require_postgres_and_redis, send_workers

CAMPAIGN = "bench: load, 高价值流失"
CIRCLE = "高价值流失"
TARGET_MS = 300  # p95 under load for every page (150 ms is the target one request at a time)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    parser.add_argument("--server-workers", type=int, default=3)
    parser.add_argument("--send-workers", type=int, default=2)
    args = parser.parse_args()
    require_postgres_and_redis()
    server_env = {
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(40), "ALLOWED_HOSTS": "127.0.0.1", "CRM_LANGUAGE": "zh-hans",
        "CRM_DATA_DIR": tempfile.mkdtemp(prefix="crm-load-"), "LOG_LEVEL": "WARNING",
    }
    django_setup(**server_env)
    # The server runs with this process's settings (run_all sets some), so that the logins below hold there; but never in DEBUG.
    server_env = {**{name: os.environ[name] for name in server_env}, "DEBUG": "0"}

    from django.contrib.auth import get_user_model
    from django.test import Client

    from campaigns.models import PENDING, Delivery, DeliveryStatus
    from campaigns.services import campaign_launch
    from crm.models import Community, Member
    from segments.models import Circle, Tier

    users = []
    for n in range(args.sessions):
        user, _ = get_user_model().objects.get_or_create(username=f"load{n:02d}", defaults={"is_staff": True, "is_superuser": True})
        users.append(user)
    cookies = []
    for user in users:
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies["sessionid"].value)

    highest_id = Member.objects.order_by("-id").values_list("id", flat=True).first()
    tiers = list(Tier.objects.values_list("id", flat=True))
    circles = list(Circle.objects.filter(active=True).values_list("id", flat=True))
    communities = list(Community.objects.order_by("id").values_list("id", flat=True)[:200])
    preview_form = urlencode({"name": "load preview", "kind": "circle", "active": "on", "usual_share": "0",
                              "rule_recency_min": "60", "rule_spend_365_min": "500"})

    def page(rng: random.Random) -> tuple[str, str, str | None]:
        """(name, path, POST body or None), drawn with the mix staff produce."""
        choice = rng.random()
        if choice < 0.15:
            return "member list", "/admin/crm/member/", None
        if choice < 0.40:
            kind, query = rng.choice([
                ("tier", lambda: f"tier={rng.choice(tiers)}"), ("circle", lambda: f"circle={rng.choice(circles)}"),
                ("churn risk", lambda: "risk=high"), ("community", lambda: f"community={rng.choice(communities)}"),
                ("has ordered", lambda: "has_ordered=true"),
            ])
            return f"member list, {kind}", f"/admin/crm/member/?{query()}", None
        if choice < 0.60:
            return "member page", f"/admin/crm/member/{rng.randint(1, highest_id)}/change/", None
        if choice < 0.72:
            return "order list", "/admin/crm/order/", None
        if choice < 0.80:
            return "order list, refunded", "/admin/crm/order/?status=refunded", None
        if choice < 0.92:
            return "dashboard", "/admin/", None
        return "circle preview (POST)", "/admin/segments/circle/preview/", preview_form

    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "crm.wsgi", "-w", str(args.server_workers), "-b", f"127.0.0.1:{port}", "--timeout", "120"],
        cwd=ROOT, env={**os.environ, **server_env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/admin/login/")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        with relaxed_policy(), send_workers(args.send_workers, "load", **server_env):
            campaign = bench_campaign(CAMPAIGN, circles=[CIRCLE])
            launch_started = time.perf_counter()
            created = campaign_launch(campaign=campaign, force=True)
            launched = time.perf_counter()
            timings, failures = run_sessions(port, cookies, page, args)
            window_end = time.perf_counter()
            sent_in_window = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENT).count()
            while Delivery.objects.filter(campaign=campaign, status__in=PENDING).exists():
                time.sleep(0.5)
            finished = time.perf_counter()
            sent = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENT).count()
    finally:
        server.terminate()
        server.wait(timeout=60)

    print(f"PostgreSQL + Redis, {highest_id:,} members; gunicorn with {args.server_workers} sync workers; "
          f"{args.sessions} sessions thinking {args.think[0]}–{args.think[1]} s; {args.send_workers} send workers")
    print(f"campaign: {created:,} outbox rows written in {launched - launch_started:.1f} s; "
          f"{sent_in_window:,} sent during the {window_end - launched:.0f} s of load; all {sent:,} sent after {finished - launch_started:.0f} s")
    send_rate = sent_in_window / (window_end - launched)
    print()
    print(f"| {'page':<28} | {'requests':>8} | {'errors':>6} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    worst = 0.0
    everything: list[float] = []
    for name in sorted(timings):
        values = sorted(timings[name])
        everything.extend(values)
        p95 = percentile(values, 0.95)
        worst = max(worst, p95)
        print(f"| {name:<28} | {len(values):>8,} | {failures[name]:>6} | {statistics.median(values):>7.0f} | {p95:>7.0f} | {percentile(values, 0.99):>7.0f} |")
        record(f"under load: {name} p95", f"{p95:.0f} ms", target=f"< {TARGET_MS} ms", met=p95 < TARGET_MS and not failures[name],
               against=f"p50 {statistics.median(values):.0f} ms, p99 {percentile(values, 0.99):.0f} ms, {len(values)} requests")
    everything.sort()
    total_requests = len(everything)
    print()
    print(f"all pages: {total_requests:,} requests ({total_requests / args.seconds:.1f}/s), p50 {statistics.median(everything):.0f} ms, "
          f"p95 {percentile(everything, 0.95):.0f} ms, p99 {percentile(everything, 0.99):.0f} ms; errors {sum(failures.values())}")
    print(f"send rate during the load: {send_rate:,.0f} messages/s")
    print(f"target p95 < {TARGET_MS} ms under load: " + ("met" if worst < TARGET_MS and not sum(failures.values()) else "MISSED"))
    record("send rate while 20 staff browse", f"{send_rate:,.0f} messages/s", against="bench/fanout.py's rate with the machine to itself")


def run_sessions(port: int, cookies: list[str], page, args) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each session a thread, one request in flight at a time; every thread stops after args.seconds."""
    timings: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def session(number: int, cookie: str) -> None:
        rng = random.Random(number)
        csrf = secrets.token_hex(16)  # 32 characters: Django takes an unmasked token equal to the cookie's secret
        headers = {"Cookie": f"sessionid={cookie}; csrftoken={csrf}", "X-CSRFToken": csrf}
        while time.monotonic() < deadline:
            name, path, body = page(rng)
            started = time.perf_counter()
            status = 0
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                if body is None:
                    connection.request("GET", path, headers=headers)
                else:
                    connection.request("POST", path, body=body, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
                response = connection.getresponse()
                response.read()
                status = response.status
                connection.close()
            except OSError:
                pass
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                timings[name].append(elapsed)
                if status != 200:
                    failures[name] += 1
            time.sleep(rng.uniform(*args.think))

    threads = [threading.Thread(target=session, args=(n, cookie), daemon=True) for n, cookie in enumerate(cookies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.seconds + 120)
    return timings, failures


if __name__ == "__main__":
    main()
