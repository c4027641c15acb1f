from django.core.management.base import BaseCommand

from campaigns.demo import seed_demo_campaigns


class Command(BaseCommand):
    help = "Demo message templates and draft campaigns (idempotent)."

    def handle(self, *args, **options):
        campaign = seed_demo_campaigns()
        self.stdout.write("demo campaigns created" if campaign else "demo campaigns already there")
