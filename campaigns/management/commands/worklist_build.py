import datetime as dt

from django.core.management.base import BaseCommand
from django.utils import timezone

from campaigns.worklist.models import WorklistItem
from campaigns.worklist.services import worklist_build


class Command(BaseCommand):
    help = "Build the group leaders' worklist for a day (the beat runs it at 07:30); marked items are kept."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--day", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")

    def handle(self, *args, day: dt.date | None, **options):
        day = day or timezone.localdate()
        added = worklist_build(day)
        leaders = WorklistItem.objects.filter(day=day).values("leader").distinct().count()
        self.stdout.write(f"{added} worklist items added for {day}; {leaders} group leaders have a list")
