"""Rebuild the tier history and the dashboard's snapshots from the orders."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from campaigns.dashboard.history import history_rebuild
from segments.history import STEPS, RebuildError


class Command(BaseCommand):
    help = (
        "Re-derive every member's tier at each step of a past range from the orders alone, write the moves into the "
        "tier history at each step day's end (reason: history rebuilt from orders), and the dashboard's snapshot of each "
        "step day. It stops the day before the history recomputes recorded, and replaces its own earlier moves in the range."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="start", type=dt.date.fromisoformat, required=True, help="YYYY-MM-DD: the first step")
        parser.add_argument("--to", dest="end", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD: the last step (default: yesterday)")
        parser.add_argument("--step", choices=STEPS, default="week")
        parser.add_argument("--no-snapshots", action="store_true", help="only the tier history")

    def handle(self, *args, start: dt.date, end: dt.date | None, step: str, no_snapshots: bool, **options) -> None:
        try:
            result = history_rebuild(start=start, end=end, step=step, snapshots=not no_snapshots)
        except RebuildError as error:
            raise CommandError(str(error)) from error
        if result["clipped_from"]:
            self.stdout.write(f"Recorded tier history starts on {result['end']}'s next day: the rebuild stops there, not on {result['clipped_from']}.")
        self.stdout.write(
            f"Tier history from {result['start']} to {result['end']}: {result['steps']:,} steps ({step}), "
            f"{result['moves']:,} moves in {result['tiers_seconds']:.1f} s; "
            f"{result['snapshots']:,} dashboard snapshots in {result['snapshot_seconds']:.1f} s."
        )
