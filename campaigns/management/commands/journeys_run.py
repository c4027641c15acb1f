from django.core.management.base import BaseCommand

from campaigns.journeys.services import journeys_run


class Command(BaseCommand):
    help = "One pass of the journeys (the beat runs it every 10 minutes): exits, new enrolments, due steps into the outbox."

    def handle(self, *args, **options):
        summary = journeys_run()
        self.stdout.write(", ".join(f"{key}: {value}" for key, value in sorted(summary.items())) or "nothing to do")
