import datetime as dt
import json

from django.core.management.base import BaseCommand

from campaigns.dashboard.kpi import snapshot_build


class Command(BaseCommand):
    help = "Compute and store the dashboard's figures for a day (today by default; past days can be rebuilt) and print them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
        parser.add_argument("--json", action="store_true", help="print every figure as JSON")

    def handle(self, *args, as_of: dt.date | None, json: bool, **options):
        figures = snapshot_build(as_of)
        if json:
            self.stdout.write(_dumps(figures))
            return
        base = figures["base"] or {}
        self.stdout.write(
            f"{figures['day']}: {base.get('members', 0):,} members, GMV ¥{base.get('gmv', 0):,.2f}, "
            f"{len(figures['tiers'])} tiers, {len(figures['leaders'])} leaders, {len(figures['campaigns'])} campaigns, "
            f"{len(figures['journeys'])} journeys"
        )


def _dumps(figures: dict) -> str:
    return json.dumps(figures, ensure_ascii=False, indent=2, sort_keys=True)
