"""Settle the growth value and points ledgers: everyone, the night's changes, or some members."""

from django.core.management.base import BaseCommand, CommandError

from crm.models import Member
from loyalty import services


class Command(BaseCommand):
    help = "Award and reverse growth value and points by the rules, and write the balances."

    def add_arguments(self, parser):
        parser.add_argument("--nightly", action="store_true", help="only what changed since the last run")
        parser.add_argument("--member", nargs="+", default=None, metavar="MEMBER_ID", help="these members (member IDs)")
        parser.add_argument("--reprice", action="store_true", help="also bring past awards to today's rules (shows a preview first)")
        parser.add_argument("--yes", action="store_true", help="with --reprice: write without asking")

    def handle(self, *args, nightly: bool, member, reprice: bool, yes: bool, **options):
        if reprice:
            preview = services.reprice_preview()
            for ledger, moves in preview.items():
                self.stdout.write(f"{ledger}: {moves.entries} entries, {moves.members} members, {moves.amount:+d}")
            if not yes:
                self.stdout.write("nothing written; run again with --yes to write these differences")
                return
            run = services.ledgers_reprice()
        elif member:
            ids = list(Member.objects.filter(external_id__in=member).values_list("pk", flat=True))
            if len(ids) != len(set(member)):
                raise CommandError("unknown member ID(s): " + ", ".join(sorted(set(member) - set(Member.objects.filter(pk__in=ids).values_list("external_id", flat=True)))))
            run = services.ledgers_settle(member_ids=ids)
        elif nightly:
            run = services.ledgers_settle_nightly()
        else:
            run = services.ledgers_settle()
        self.stdout.write(f"{run.scope}: {run.entries} entries written, {run.members} members")
