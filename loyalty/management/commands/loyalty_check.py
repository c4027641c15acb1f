"""Recompute every balance from the ledgers and name each member whose stored balance differs."""

import sys

from django.core.management.base import BaseCommand
from django.db import connection

from crm.models import Member
from loyalty.balances import balances_differing


class Command(BaseCommand):
    help = "Recompute every balance from the ledgers; exit 1 naming the members whose stored balance differs."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=1000, help="name at most this many members")

    def handle(self, *args, limit: int, **options):
        with connection.cursor() as cursor:
            rows = balances_differing(cursor, limit=limit)
        if not rows:
            self.stdout.write("every balance equals its ledgers")
            return
        names = dict(Member.objects.filter(pk__in=[row["member_id"] for row in rows]).values_list("pk", "external_id"))
        fields = ("growth", "points", "pending", "expiring")
        for row in rows:
            if row["stored_growth"] is None:
                detail = "has entries but no stored balance"
            else:
                differing = [name for name in fields if row["stored_" + name] != row[name]]
                if row["stored_pending_until"] is not None and row["stored_pending_until"] != row["pending_until"]:
                    differing.append("pending_until")
                detail = ", ".join(f"{name} stored {row['stored_' + name]} ledger {row[name]}" for name in differing)
            self.stderr.write(f"{names.get(row['member_id'], row['member_id'])}: {detail}")
        self.stderr.write(f"{len(rows)} member(s) differ{' (first ' + str(limit) + ')' if len(rows) == limit else ''}")
        sys.exit(1)
