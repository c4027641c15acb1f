import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns.services import reply_receive


class Command(BaseCommand):
    help = "Read a CSV of SMS replies (columns mobile,text[,received_at]); R, T, TD or 退订 withdraws SMS consent at once."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path: str, **options):
        file = Path(path)
        if not file.exists():
            raise CommandError(f"{path}: no such file")
        unsubscribed = total = 0
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"mobile", "text"} - set(reader.fieldnames or [])
            if missing:
                raise CommandError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                received = parse_datetime(row.get("received_at") or "") if row.get("received_at") else None
                if received is not None and timezone.is_naive(received):
                    received = timezone.make_aware(received)
                if row.get("received_at") and received is None:
                    self.stderr.write(f"row {line}, received_at: not a date and time, reply recorded as received now")
                reply = reply_receive(mobile=row["mobile"], text=row["text"], source=f"file {file.name}", received_at=received)
                total += 1
                unsubscribed += reply.unsubscribed
        self.stdout.write(f"{total} replies read, {unsubscribed} unsubscribed")
