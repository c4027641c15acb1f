"""What a click on each column header of the big admin lists costs (server side), and
which of them BigTableAdmin still offers past settings.ADMIN_SORT_ANY_UP_TO rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        .venv/bin/python bench/admin_sorts.py [--repeat 2] [--timeout 30]

Seed first (manage.py seed_demo --members 1000000, recompute_tiers, VACUUM ANALYZE).
Every column of every BigTableAdmin list is requested sorted (?o=N) with the limit
lifted, logged in as a superuser: an offered sort --repeat times after one warm-up
(the median shown), one no longer offered once; a query over --timeout seconds is
stopped and shown as such (where the database's settings let PGOPTIONS set it). "offered" says whether the header is
still a sort link with the limit in force. Target: every offered sort under 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import django_setup, record  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--repeat", type=int, default=2)
parser.add_argument("--timeout", type=int, default=30)
options = parser.parse_args()
os.environ["PGOPTIONS"] = f"-c statement_timeout={options.timeout}s"  # libpq: every connection this process opens
django_setup(debug=False, SECRET_KEY="bench", ALLOWED_HOSTS="testserver", CRM_LANGUAGE="zh-hans")

from django.conf import settings  # noqa: E402
from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import DatabaseError  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402

from crm.admin_base import BigTableAdmin  # noqa: E402

TARGET_MS = 150


def sorts_at_all(model, model_admin, column) -> bool:
    """Whether Django offers the column's header as a sort at all (a field, or a method with admin_order_field)."""
    if callable(column):
        return getattr(column, "admin_order_field", None) is not None
    if column in {field.name for field in model._meta.get_fields()}:
        return True
    attribute = getattr(model_admin, column, None) or getattr(model, column, None)
    return getattr(attribute, "admin_order_field", None) is not None


def main() -> None:
    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    request = RequestFactory().get("/")
    request.user = user
    request.session = {}
    limit = settings.ADMIN_SORT_ANY_UP_TO
    print(f"| {'list':<24} | {'rows (estimate)':>15} | {'column':<18} | {'p50 ms':>8} | {'offered':>7} |")
    print(f"|{'-' * 26}|{'-' * 17}|{'-' * 20}|{'-' * 10}|{'-' * 9}|")
    misses, spared = [], []
    try:
        for model, model_admin in admin.site._registry.items():
            if not isinstance(model_admin, BigTableAdmin):
                continue
            opts = model._meta
            url = f"/admin/{opts.app_label}/{opts.model_name}/"
            rows = model_admin._table_rows()
            settings.ADMIN_SORT_ANY_UP_TO = limit
            offered = set(model_admin.get_sortable_by(request))
            settings.ADMIN_SORT_ANY_UP_TO = 10**15
            columns = list(model_admin.get_changelist_instance(request).list_display)  # as ?o= counts them (the checkbox first)
            client.get(url)  # this list's templates and menu, once, before any timing
            for index, column in enumerate(columns):
                if column == "action_checkbox" or not sorts_at_all(model, model_admin, column):
                    continue
                timings = []
                is_offered = column in offered
                # An offered sort: a warm-up, then --repeat timed requests. One no longer offered is
                # timed once (it reads the whole table: the cache warms nothing).
                for attempt in range(options.repeat + 1 if is_offered else 1):
                    started = time.perf_counter()
                    try:
                        response = client.get(url, {"o": str(index)})
                    except DatabaseError:  # stopped by the statement timeout
                        timings = None
                        break
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, (url, index, response.status_code)
                    if attempt or not is_offered:
                        timings.append(elapsed)
                shown = f">{options.timeout * 1000}" if timings is None else f"{statistics.median(timings):.0f}"
                print(f"| {opts.model_name:<24} | {rows:>15,} | {column:<18} | {shown:>8} | {'yes' if is_offered else 'no':>7} |")
                slow = timings is None or statistics.median(timings) > TARGET_MS
                if slow and is_offered:
                    misses.append(f"{opts.model_name}.{column}")
                elif slow:
                    spared.append(f"{opts.model_name}.{column}")
    finally:
        settings.ADMIN_SORT_ANY_UP_TO = limit
    print()
    print(f"slow sorts no longer offered: {len(spared)}")
    print(f"offered sorts over {TARGET_MS} ms: " + (", ".join(misses) if misses else "none"))
    record("admin: offered column sorts over 150 ms at this size", str(len(misses)), target="0", met=not misses,
           against=f"{len(spared)} slow sorts no longer offered")


if __name__ == "__main__":
    main()
