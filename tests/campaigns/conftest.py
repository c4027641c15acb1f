import datetime as dt
import json

import pytest
import time_machine

from campaigns.models import Campaign, CampaignStatus, Delivery, MessageTemplate, Variant
from crm.models import Consent
from segments.models import Tier
from tests.crm.factories import SHANGHAI, MemberFactory

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def outbox(settings, tmp_path):
    """The file backend's sink for every channel, in a fresh folder."""
    settings.CAMPAIGN_BACKENDS = {
        channel: {"BACKEND": "campaigns.backends.FileBackend", "OPTIONS": {"directory": str(tmp_path / "outbox")}}
        for channel in ("sms", "wecom", "email", "push")
    }

    def lines(channel: str = "sms") -> list[dict]:
        path = tmp_path / "outbox" / f"{channel}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    return lines


def member_with(consent: bool | None = True, **fields):
    member = MemberFactory(**fields)
    if consent is not None:
        Consent.objects.create(member=member, channel="sms", granted=consent, source="test")
    return member


def campaign_for(*, tiers=("C",), body="{{ salutation }}，新品到店", status=CampaignStatus.SCHEDULED, **fields) -> Campaign:
    template = MessageTemplate.objects.create(name=f"t-{MessageTemplate.objects.count()}", body=body)
    campaign = Campaign.objects.create(name=fields.pop("name", f"c-{Campaign.objects.count()}"), status=status, **fields)
    campaign.target_tiers.set(Tier.objects.filter(code__in=tiers))
    Variant.objects.create(campaign=campaign, label="A", template=template, share=100)
    return campaign


def statuses(campaign) -> dict:
    return {member_id: (status, reason) for member_id, status, reason in Delivery.objects.filter(campaign=campaign).values_list("member_id", "status", "skip_reason")}
