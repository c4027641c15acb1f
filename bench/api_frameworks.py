"""Which API library: django-ninja against Django REST framework, measured.

    .venv/bin/python bench/api_frameworks.py [--seconds 15] [--clients 4]

Serves bench/_frameworks_app.py (the same lookup and the same validated POST
of 100 orders in both libraries, on the product's settings and middleware)
with gunicorn, 2 sync workers as the README serves the product, and drives it
over real HTTP from loopback with keep-alive-less clients in threads. Prints
requests per second and p50/p95 latency per library and operation."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, percentile, print_rows  # noqa: E402

BODY = json.dumps(
    {"items": [{"order_no": f"N{i}", "member_external_id": f"M{i}", "ordered_at": "2026-12-05T10:00:00+08:00", "amount": "12.50"} for i in range(100)]}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drive(port: int, method: str, path: str, seconds: float, clients: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        mine: list[float] = []
        while time.monotonic() < stop:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            begun = time.perf_counter()
            connection.request(method, path, body=BODY if method == "POST" else None, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - begun)
            if response.status != 200:
                with lock:
                    errors[0] += 1
            connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    begun = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.monotonic() - begun), sorted(latencies), errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench._frameworks_app", "DEBUG": "0", "SECRET_KEY": "bench", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "crm.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=ROOT, env=env
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rows = []
        for library in ("ninja", "drf"):
            for name, method, path in (("lookup", "GET", f"/{library}/members/M1/standing"), ("POST 100 orders", "POST", f"/{library}/orders")):
                drive(port, method, path, 2, args.clients)  # warm both workers
                rate, latencies, errors = drive(port, method, path, args.seconds, args.clients)
                rows.append(
                    (f"{library}: {name}", f"{rate:,.0f}/s", f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p95 {percentile(latencies, 0.95) * 1000:.1f} ms, {errors} errors")
                )
        print_rows(rows)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
