"""The shop's API under load, over real HTTP from loopback (issue "The shop
talks to the CRM"): standing lookups and order ingestion, beside the file
import's rate measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/api.py [--seconds 30] [--server-workers 4] [--clients 8] [--batches 30]

On the seeded crm_bench (1M members). gunicorn serves crm.wsgi (sync workers,
as the README serves it); the load comes from client processes with threads,
one request in flight each, on the same 2-core machine (their CPU is part of
what the server does not get). Two Celery workers recompute the members the
batches touch, as in production.

1. Standing: GET /members/{id}/standing of random members: lookups a second,
   p95 at the server (the Server-Timing header: from the first to the last
   middleware) and p50/p95 at the client (gunicorn's queue included).
2. Ingestion: batches of 1,000 new paid orders for random members, from
   --posters shop processes at once, each order with 2 lines; orders a second, and the freshness lag:
   from a batch's answer until every one of its members' metrics shows the
   order (MemberMetrics.last_order_at), polled every 0.2 s.
3. The file import of the same number of orders (engine.run_import of a CSV), in orders a second.
The orders the bench adds are deleted at the end. The ledgers must have had
their first award (bench/loyalty.py, or manage.py loyalty_settle), as in
production: otherwise each member's first settle writes his whole history.
run_all runs the loyalty bench before this one."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import http.client
import json
import multiprocessing
import os
import random
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, django_setup, percentile, print_rows, record, require_postgres_and_redis, send_workers

PREFIX = "BENCH-API-"
STANDING_P95_MS = 20
STANDING_RATE = 1000
INGEST_RATE = 5000
FRESH_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lookups(port: int, key: str, ids: list[str], seconds: float, threads: int, out) -> None:
    latencies: list[float] = []
    server: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run() -> None:
        mine, at_server, bad = [], [], 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop:
            path = f"/api/v1/members/{random.choice(ids)}/standing"
            begun = time.perf_counter()
            try:
                connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                timing = response.getheader("Server-Timing", "")
                if "dur=" in timing:
                    at_server.append(float(timing.split("dur=")[1]) / 1000)
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
            mine.append(time.perf_counter() - begun)
            bad += not ok
        with lock:
            latencies.extend(mine)
            server.extend(at_server)
            errors[0] += bad

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((latencies, server, errors[0]))


def standing_load(port: int, key: str, ids: list[str], seconds: float, clients: int) -> tuple[float, list[float], list[float], int]:
    processes = 2
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_lookups, args=(port, key, ids, seconds, max(1, clients // processes), queue)) for _ in range(processes)]
    begun = time.monotonic()
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - begun
    latencies = sorted(value for values, _server, _errors in results for value in values)
    server = sorted(value for _values, values, _errors in results for value in values)
    return len(latencies) / elapsed, latencies, server, sum(errors for _values, _server, errors in results)


def post(port: int, key: str, path: str, body: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("POST", path, body=json.dumps(body), headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    try:
        return response.status, json.loads(raw or b"null")
    except ValueError:  # a server error's HTML page
        return response.status, {"body": raw[:300].decode(errors="replace")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--server-workers", type=int, default=4)
    parser.add_argument("--server-threads", type=int, default=1, help="above 1: gunicorn's gthread workers (keep-alive) with this many threads each")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30, help="ingestion batches of 1,000 orders")
    parser.add_argument("--celery-workers", type=int, default=2)
    parser.add_argument("--posters", type=int, default=2, help="shop processes posting batches at once")
    parser.add_argument("--standing-only", action="store_true", help="the lookups only (to compare server settings)")
    args = parser.parse_args()
    require_postgres_and_redis()
    django_setup()
    from django.db import connection

    from api.keys import client_create
    from api.models import ApiClient
    from crm.importing.engine import run_import
    from crm.importing.specs import SPECS

    from loyalty.models import SettleRun

    if not SettleRun.objects.filter(scope__in=SettleRun.NIGHTLY_SCOPES).exists():
        # Each member's first settle would write his whole history (7 ms a member): the freshness would measure that.
        raise SystemExit("the ledgers were never awarded on this database: run manage.py loyalty_settle (or bench/loyalty.py) first")
    ApiClient.objects.filter(name="bench").delete()
    _client, key = client_create(name="bench", scopes=["ingest", "standing"], rate_per_minute=10_000_000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT external_id, id FROM crm_member WHERE erased_at IS NULL ORDER BY random() LIMIT 200000")
        sample = cursor.fetchall()
        cursor.execute("DELETE FROM crm_order WHERE order_no LIKE %s", [PREFIX + "%"])
    ids = [external_id for external_id, _pk in sample]
    by_external = dict(sample)
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "crm.wsgi", "-w", str(args.server_workers), "-b", f"127.0.0.1:{port}", "--timeout", "300",
         *(["-k", "gthread", "--threads", str(args.server_threads)] if args.server_threads > 1 else [])],
        cwd=ROOT, env={**os.environ, "DEBUG": "0", "SECRET_KEY": "bench", "ALLOWED_HOSTS": "127.0.0.1", "CELERY_TASK_ALWAYS_EAGER": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        standing_load(port, key, ids, 3, args.clients)  # warm every worker
        rate, latencies, server_times, errors = standing_load(port, key, ids, args.seconds, args.clients)
        p50, p95 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000
        server_p95 = percentile(server_times, 0.95) * 1000
        rows.append(("standing: lookups a second", f"{rate:,.0f}/s", f"target >= {STANDING_RATE:,}; {args.clients} clients, {args.server_workers} gunicorn workers"
                     + (f" x {args.server_threads} threads" if args.server_threads > 1 else " (sync)") + f", {errors} errors"))
        rows.append(("standing: p95 at the server (Server-Timing)", f"{server_p95:.1f} ms", f"target < {STANDING_P95_MS} ms"))
        rows.append(("standing: p50 / p95 at the client", f"{p50:.1f} / {p95:.1f} ms", "gunicorn's queue and loopback included"))
        record("standing lookups a second", f"{rate:,.0f}/s", target=f">= {STANDING_RATE:,}/s", met=rate >= STANDING_RATE)
        record("standing p95 at the server", f"{server_p95:.1f} ms", target=f"< {STANDING_P95_MS} ms", met=server_p95 < STANDING_P95_MS)

        if args.standing_only:
            print_rows(rows)
            return
        # Ingestion with the workers keeping the members current.
        with send_workers(args.celery_workers, name="bench-api"):
            serial = [0]
            pending: list[tuple[float, list[int], dt.datetime]] = []
            lags: list[float] = []
            stop_watch = threading.Event()

            def watch() -> None:
                from django.db import connection as watcher

                while not stop_watch.is_set() or pending:
                    if pending:
                        answered, members, at = pending[0]
                        with watcher.cursor() as cursor:
                            cursor.execute(
                                "SELECT COUNT(*) FROM segments_membermetrics WHERE member_id = ANY(%s) AND last_order_at >= %s", [members, at]
                            )
                            if cursor.fetchone()[0] >= len(members):
                                lags.append(time.monotonic() - answered)
                                pending.pop(0)
                                continue
                    time.sleep(0.2)
                watcher.close()

            watcher = threading.Thread(target=watch)
            watcher.start()
            posted = [0]
            lock = threading.Lock()

            def poster(batches: int) -> None:
                for _batch in range(batches):
                    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=1)
                    members = random.sample(ids, 1000)
                    items = []
                    with lock:
                        start = serial[0]
                        serial[0] += len(members)
                    for offset, external_id in enumerate(members, start=start + 1):
                        items.append({
                            "order_no": f"{PREFIX}{offset}", "member_external_id": external_id, "ordered_at": at.isoformat(), "amount": "88.00",
                            "lines": [{"sku": "BENCH-SKU-1", "quantity": 1, "unit_price": "48.00"}, {"sku": "BENCH-SKU-2", "quantity": 2, "unit_price": "20.00"}],
                        })
                    status, answer = post(port, key, "/api/v1/orders", {"items": items})
                    if status != 200:
                        raise SystemExit(f"batch refused: {status} {str(answer)[:300]}")
                    with lock:
                        posted[0] += answer["created"]
                        pending.append((time.monotonic(), [by_external[external_id] for external_id in members], at))

            begun = time.monotonic()
            posters = [threading.Thread(target=poster, args=(args.batches // args.posters,)) for _ in range(args.posters)]
            for thread in posters:
                thread.start()
            for thread in posters:
                thread.join()
            posted = posted[0]
            ingest_seconds = time.monotonic() - begun
            deadline = time.monotonic() + 600
            while pending and time.monotonic() < deadline:
                time.sleep(0.5)
            stop_watch.set()
            if pending:
                lags.extend(time.monotonic() - answered for answered, _m, _a in pending)
                pending.clear()
            watcher.join()
        ingest_rate = posted / ingest_seconds
        lags.sort()
        rows.append(("ingestion: orders a second (batches of 1,000, 2 lines each)", f"{ingest_rate:,.0f}/s",
                     f"target >= {INGEST_RATE:,}; {posted:,} orders in {ingest_seconds:.1f} s, {args.posters} posting at once"))
        rows.append(("ingestion: freshness lag p50 / max", f"{percentile(lags, 0.5):.1f} / {lags[-1]:.1f} s", f"target <= {FRESH_S} s; {args.celery_workers} Celery workers"))
        record("API ingestion", f"{ingest_rate:,.0f} orders/s", target=f">= {INGEST_RATE:,}/s", met=ingest_rate >= INGEST_RATE)
        record("API freshness lag (max)", f"{lags[-1]:.1f} s", target=f"<= {FRESH_S} s", met=lags[-1] <= FRESH_S)

        # The file import of as many orders, for comparison.
        count = args.batches * 1000
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "orders.csv"
            at = (dt.datetime.now() - dt.timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M:%S")
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["order_no", "member_external_id", "ordered_at", "amount"])
                for n in range(count):
                    writer.writerow([f"{PREFIX}FILE-{n}", random.choice(ids), at, "88.00"])
            begun = time.monotonic()
            outcome = run_import(SPECS["orders"], path, mode="all")
            file_seconds = time.monotonic() - begun
        rows.append(("file import of as many orders (no lines)", f"{outcome.created / file_seconds:,.0f}/s", f"the peer: {outcome.created:,} orders in {file_seconds:.1f} s"))
        record("file import, same run", f"{outcome.created / file_seconds:,.0f} orders/s", against="peer of the API ingestion")
    finally:
        server.terminate()
        server.wait()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM crm_orderline WHERE order_id IN (SELECT id FROM crm_order WHERE order_no LIKE %s)", [PREFIX + "%"])
            cursor.execute("DELETE FROM crm_order WHERE order_no LIKE %s", [PREFIX + "%"])
        ApiClient.objects.filter(name="bench").delete()
    print_rows(rows)


if __name__ == "__main__":
    main()
