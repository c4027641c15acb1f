"""A campaign sent by real worker processes through the configured broker, and
a worker killed in the middle of a send: after the sweeper every member has
exactly one delivery, nobody got the message twice, and what may have gone
out is waiting for reconciliation."""

import datetime as dt
import importlib
import json
from collections import Counter

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.utils import timezone

from campaigns import sending, services
from campaigns.models import PENDING, Campaign, CampaignStatus, Delivery, DeliveryStatus, SendingPolicy
from crm.models import Consent, Member
from segments.services import tiers_recompute
from tests.campaigns.conftest import campaign_for
from tests.conftest import wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
MEMBERS = 600
SLOW = {"CAMPAIGN_SMS_BACKEND": "tests.campaigns.slow_backend.SlowFileBackend", "SLOW_BACKEND_DELAY": "0.01"}


def sink_lines() -> list[dict]:
    path = django_settings.DATA_DIR / "outbox" / "sms.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def world(settings):
    # A transactional test starts from an emptied database: put the shipped ladder and policy back.
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
    SendingPolicy.objects.get_or_create(pk=1, defaults={"usual_hour": False})
    SendingPolicy.objects.filter(pk=1).update(usual_hour=False, quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0))
    settings.CAMPAIGN_BATCH = 200
    (django_settings.DATA_DIR / "outbox" / "sms.jsonl").unlink(missing_ok=True)
    Member.objects.bulk_create(Member(external_id=f"L{n:05d}", name=f"孙{n}", mobile=f"137{n:08d}") for n in range(MEMBERS))
    Consent.objects.bulk_create(Consent(member=m, channel="sms", granted=True) for m in Member.objects.all())
    tiers_recompute()
    return campaign_for()


def test_a_worker_killed_mid_send_leaves_one_delivery_per_member(world, start_worker):
    first = start_worker(**SLOW)
    services.campaign_launch(campaign=world)  # autocommit: the batches go to the broker at once
    wait_until(lambda: len(sink_lines()) >= 40, seconds=90)
    first.kill()
    first.wait(timeout=20)
    in_flight = Delivery.objects.filter(status=DeliveryStatus.SENDING).count()
    assert in_flight > 0  # killed in the middle of a batch

    policy = SendingPolicy.current()
    sending.dispatch(now=timezone.now() + dt.timedelta(minutes=policy.stale_minutes + 1))  # the sweeper, run later
    assert Delivery.objects.filter(status=DeliveryStatus.UNKNOWN).count() == in_flight
    start_worker(**SLOW)
    wait_until(lambda: not Delivery.objects.filter(campaign=world, status__in=PENDING).exists(), seconds=90)

    assert Delivery.objects.filter(campaign=world).count() == MEMBERS
    assert Delivery.objects.values("member").distinct().count() == MEMBERS
    lines = Counter(line["member"] for line in sink_lines())
    assert max(lines.values()) == 1  # nobody got the message twice
    sent = set(Delivery.objects.filter(status=DeliveryStatus.SENT).values_list("member_id", flat=True))
    unknown = set(Delivery.objects.filter(status=DeliveryStatus.UNKNOWN).values_list("member_id", flat=True))
    assert sent | unknown == set(Member.objects.values_list("pk", flat=True))
    assert sent <= set(lines)  # every row marked sent went out once
    assert set(lines) - sent <= unknown  # what went out without being recorded waits for reconciliation
    services.campaigns_due()
    assert Campaign.objects.get(pk=world.pk).status == CampaignStatus.DONE
