from django.core.management.base import BaseCommand
from django.utils import timezone

from campaigns.demo import seed_demo_campaign_history, seed_demo_campaigns, seed_demo_invite_rewards, seed_demo_redemptions
from campaigns.models import DeliveryStatus


class Command(BaseCommand):
    help = (
        "Demo message templates, draft campaigns, one campaign sent three weeks ago and points spent on rights "
        "over the last months, friends invited rewarded (idempotent; run after recompute_tiers, which awards the points)."
    )

    def handle(self, *args, **options):
        campaign = seed_demo_campaigns()
        self.stdout.write("demo campaigns created" if campaign else "demo campaigns already there")
        sent = seed_demo_campaign_history()
        if sent is None:
            self.stdout.write("the demo's sent campaign is already there")
        else:
            count = sent.deliveries.filter(status=DeliveryStatus.SENT).count()
            self.stdout.write(f"{sent.name}: {count} messages sent on {timezone.localtime(sent.last_launched_at):%Y-%m-%d}")
        redeemed = seed_demo_redemptions()
        self.stdout.write(f"{redeemed} demo redemptions of points for rights" if redeemed else "the demo's redemptions are already there")
        rewarded = seed_demo_invite_rewards()
        self.stdout.write(f"{rewarded} demo invite rewards for friends invited" if rewarded else "the demo's invite rewards are already there")
