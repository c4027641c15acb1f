"""Run the recompute in the foreground: everyone, or the members named; then what
the apps above keep of them (growth value and points), unless --tiers-only."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.utils import timezone

from crm.models import Member
from segments.models import ChangeReason, MemberMetrics
from segments.recompute.scope import members_by, past_day_end
from segments.services import tiers_recompute
from segments.signals import recomputed_from_command


class Command(BaseCommand):
    help = (
        "Recompute metrics, tiers, churn risk and circles (everyone, or --member EXTERNAL_ID ...), then growth value and "
        "points (unless --tiers-only), and print a summary."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
        parser.add_argument("--member", nargs="+", default=None, metavar="EXTERNAL_ID")
        parser.add_argument(
            "--tiers-only", action="store_true",
            help="metrics, tiers, churn risk and circles only: leave growth value and points to their own settle (loyalty_settle)",
        )

    def handle(self, *args, as_of: dt.date | None, member: list[str] | None, tiers_only: bool = False, **options) -> None:
        member_ids = None
        if member:
            found = dict(Member.objects.filter(external_id__in=member).values_list("external_id", "id"))
            missing = [external_id for external_id in member if external_id not in found]
            if missing:
                raise CommandError(f"No member with ID {', '.join(missing)}")
            member_ids = list(found.values())
        run = tiers_recompute(member_ids=member_ids, as_of=as_of, reason=ChangeReason.MANUAL, refit=member_ids is None)
        seconds = (run.finished_at - run.started_at).total_seconds()
        self.stdout.write(
            f"As of {run.as_of}: {run.members:,} members evaluated in {seconds:.1f} s, "
            f"{run.tier_changes:,} tier changes, {run.reviews:,} held for review."
        )
        counted = MemberMetrics.objects.filter(member_id__in=member_ids) if member_ids else MemberMetrics.objects.all()
        until = past_day_end(run.as_of, timezone.localdate())
        if until:  # who had not joined by then keeps the figures of a later run
            counted = counted.filter(member__in=members_by(until))
        tiers = counted.values_list("tier__code", "tier__name").annotate(members=Count("pk")).order_by("-tier__rank")
        for code, name, members in tiers:
            self.stdout.write(f"  {code} {name}: {members:,}")
        self.stdout.write("  " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in run.timings.items()))
        if not tiers_only:  # what other apps keep of these members (growth value and points), after their tiers
            for _receiver, line in recomputed_from_command.send(sender=self.__class__, member_ids=member_ids):
                self.stdout.write(str(line))
