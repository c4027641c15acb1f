from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign
from campaigns.services import campaign_launch


def campaign_by_name_or_id(value: str) -> Campaign:
    campaign = Campaign.objects.filter(name=value).first()
    if campaign is None and value.isdigit():
        campaign = Campaign.objects.filter(pk=int(value)).first()
    if campaign is None:
        raise CommandError(f"no campaign named or numbered {value!r}")
    return campaign


class Command(BaseCommand):
    help = "Launch an approved campaign: write its outbox rows and hand the due ones to the workers."

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="name or id")
        parser.add_argument("--now", action="store_true", help="send now even if scheduled for later")

    def handle(self, *args, campaign: str, now: bool, **options):
        target = campaign_by_name_or_id(campaign)
        try:
            created = campaign_launch(campaign=target, force=now)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{target.name}: {created} deliveries created")
