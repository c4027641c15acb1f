"""Write every member's metrics, tier, churn figures and circles as CSV."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils import timezone

from segments.export_columns import PROVIDERS
from segments.models import CircleMembership, MemberMetrics, RecomputeRun, RunStatus
from segments.recompute.scope import members_by, past_day_end

HEADER = ["external_id", "recency_days", "orders_365", "spend_365", "tier", "p_alive", "expected_orders_30d", "circles"]
CHUNK = 20_000


class Command(BaseCommand):
    help = (
        "Write external_id, recency_days, orders_365, spend_365, tier, p_alive, expected_orders_30d, circles (| separated) "
        "as CSV, and the columns other apps add (growth_value, points_available, points_pending as of the day)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="the date recency is counted to (default: today)")
        parser.add_argument("file", type=Path)

    def handle(self, *args, as_of: dt.date | None, file: Path, **options) -> None:
        as_of = as_of or timezone.localdate()
        self._warn_if_stale(as_of)
        # A past day lists the members there were by its end, as a run as of that day covers them:
        # not those who joined later, whose stored rows (if a later run made them) are of another day.
        until = past_day_end(as_of, timezone.localdate())
        later = 0
        rows = 0
        with file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*HEADER, *(header for provider in PROVIDERS for header in provider.headers)])
            last_id = 0
            while True:
                chunk = list(
                    MemberMetrics.objects.filter(member_id__gt=last_id)
                    .order_by("member_id")
                    .values_list("member_id", "member__external_id", "last_order_at", "orders_365", "spend_365", "tier__code", "p_alive", "expected_orders_30d")[:CHUNK]
                )
                if not chunk:
                    break
                ids = [row[0] for row in chunk]
                circles: dict[int, list[str]] = {}
                for member_id, name in (
                    CircleMembership.objects.filter(member_id__in=ids).order_by("circle__name").values_list("member_id", "circle__name")
                ):
                    circles.setdefault(member_id, []).append(name)
                extra = [(provider.values(ids, as_of), ("",) * len(provider.headers)) for provider in PROVIDERS]
                joined = set(members_by(until).filter(id__in=ids).values_list("id", flat=True)) if until else None
                for member_id, external_id, last_order_at, orders, spend, tier, p_alive, expected in chunk:
                    if joined is not None and member_id not in joined:
                        later += 1
                        continue
                    recency = (as_of - timezone.localtime(last_order_at).date()).days if last_order_at else ""
                    writer.writerow(
                        [
                            external_id, recency, orders, f"{spend:.2f}", tier or "",
                            "" if p_alive is None else f"{p_alive:.3f}",
                            "" if expected is None else f"{expected:.3f}",
                            "|".join(circles.get(member_id, [])),
                            *(value for values, empty in extra for value in values.get(member_id, empty)),
                        ]
                    )
                    rows += 1
                last_id = ids[-1]
        self.stdout.write(f"Wrote {rows:,} members to {file}.")
        if later:
            self.stderr.write(f"Left out {later:,} members who had not joined by {as_of} (registered later, no paid order by then).")

    def _warn_if_stale(self, as_of: dt.date) -> None:
        """The windowed figures, tiers and circles are the stored ones of the last recompute, while
        recency and the loyalty columns are counted to --as-of: say so when those days differ."""
        # A nightly run brings everyone to its day as well (those it does not read keep what cannot have changed).
        last = (RecomputeRun.objects.filter(RecomputeRun.EVERYONE, status=RunStatus.DONE)
                .order_by("-started_at").first())
        if last is None:
            self.stderr.write("No full recompute has run yet: members without metrics are left out. Run recompute_tiers first.")
        elif last.as_of != as_of:
            self.stderr.write(
                f"orders_365, spend_365, tier, churn and circles are as of {last.as_of} (the last full or nightly recompute); "
                f"recency and the loyalty columns are counted to {as_of}. For one day throughout, run "
                f"recompute_tiers --as-of {as_of} first."
            )
