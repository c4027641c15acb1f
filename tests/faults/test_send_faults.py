"""A campaign sent by real worker and beat processes while things go wrong:
the worker is killed three times, the broker restarts and loses every queued
task, two beat processes run at once. Afterwards every member has exactly one
delivery, nobody got the message twice, and what may have gone out unrecorded
waits for reconciliation instead of being sent again.

Recovery is the product's own: beat's send_due (every second here) launches
the campaign, hands due rows out and sweeps rows stuck longer than the policy's
threshold (one minute here, ten by default)."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections import Counter

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from campaigns.models import PENDING, Campaign, CampaignStatus, Delivery, DeliveryStatus, SendingPolicy
from crm.models import Consent, Member
from segments.services import tiers_recompute
from tests.campaigns.conftest import campaign_for
from tests.conftest import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

MEMBERS = 6_000
# One message every 2 ms: a batch of 200 takes about half a second, long enough to be killed in.
SLOW = {"CAMPAIGN_SMS_BACKEND": "tests.campaigns.slow_backend.SlowFileBackend", "SLOW_BACKEND_DELAY": "0.002", "CAMPAIGN_BATCH": "200"}


def sink_path():
    return django_settings.DATA_DIR / "outbox" / "sms.jsonl"


def sink_members() -> Counter:
    path = sink_path()
    return Counter(json.loads(line)["member"] for line in path.read_text().splitlines()) if path.exists() else Counter()


def sent_lines() -> int:
    path = sink_path()
    return sum(1 for _ in path.open()) if path.exists() else 0


@pytest.fixture
def campaign():
    """MEMBERS members with SMS consent, all in tier C, and an approved campaign to them that beat will launch."""
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)  # the flushed ladder
    SendingPolicy.objects.update_or_create(
        pk=1, defaults={"usual_hour": False, "quiet_start": dt.time(0, 0), "quiet_end": dt.time(0, 0), "stale_minutes": 1}
    )
    PeriodicTask.objects.all().delete()
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="send due (fault suite)", task="campaigns.tasks.send_due_task", interval=every_second)
    sink_path().unlink(missing_ok=True)
    Member.objects.bulk_create(Member(external_id=f"F{n:06d}", name=f"孙{n}", mobile=f"137{n:08d}") for n in range(MEMBERS))
    Consent.objects.bulk_create(Consent(member_id=pk, channel="sms", granted=True) for pk in Member.objects.values_list("pk", flat=True))
    tiers_recompute()
    return campaign_for(tiers=("C",), status=CampaignStatus.SCHEDULED)


def assert_one_message_per_member(campaign: Campaign) -> tuple[set[int], set[int]]:
    """The promises that hold whatever happened; returns the sent and unknown members."""
    everyone = set(Member.objects.values_list("pk", flat=True))
    deliveries = Delivery.objects.filter(campaign=campaign)
    assert deliveries.count() == MEMBERS
    assert deliveries.values("member").distinct().count() == MEMBERS
    lines = sink_members()
    assert max(lines.values()) == 1, "somebody got the message twice"
    sent = set(deliveries.filter(status=DeliveryStatus.SENT).values_list("member_id", flat=True))
    unknown = set(deliveries.filter(status=DeliveryStatus.UNKNOWN).values_list("member_id", flat=True))
    assert sent | unknown == everyone  # nobody was dropped
    assert sent <= set(lines)  # every row marked sent went out once
    assert set(lines) - sent <= unknown  # what went out unrecorded waits for reconciliation
    return sent, unknown


def wait_for_the_campaign_to_finish(campaign: Campaign, seconds: float = 240) -> None:
    wait_until(
        lambda: not Delivery.objects.filter(campaign=campaign, status__in=PENDING).exists()
        and Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DONE,
        seconds=seconds, what="every message to be sent or swept and the campaign closed",
    )


def test_a_worker_killed_three_times_mid_send_leaves_one_delivery_per_member(campaign, processes):
    processes.beat()
    worker = processes.worker(**SLOW)
    in_flight_at_kills: set[int] = set()
    for share in (0.25, 0.5, 0.75):
        wait_until(lambda: sent_lines() >= MEMBERS * share, what=f"{share:.0%} of the messages")
        processes.kill(worker)
        # Handed to the gateway by the dead worker, outcome never recorded.
        in_flight_at_kills |= set(Delivery.objects.filter(status=DeliveryStatus.SENDING).values_list("member_id", flat=True))
        worker = processes.worker(**SLOW)

    wait_for_the_campaign_to_finish(campaign)

    sent, unknown = assert_one_message_per_member(campaign)
    assert in_flight_at_kills, "no kill landed in the middle of a batch"
    assert unknown == in_flight_at_kills  # exactly those wait for reconciliation, nothing else
    assert len(sent) == MEMBERS - len(unknown)


def test_a_broker_restart_mid_send_loses_no_message_and_doubles_none(campaign, processes, fault_broker):
    processes.beat()
    processes.worker(**SLOW)
    wait_until(lambda: sent_lines() >= MEMBERS * 0.3, what="30% of the messages")
    fault_broker.restart(down_seconds=2)  # every task queued in Redis is gone
    lost = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED, enqueued_at__isnull=False).count()

    wait_for_the_campaign_to_finish(campaign)

    sent, unknown = assert_one_message_per_member(campaign)
    assert lost > 0, "the restart lost no queued task: it came too late to test anything"
    assert not unknown and len(sent) == MEMBERS  # nothing was in doubt: the worker lived
    assert sum(sink_members().values()) == MEMBERS


def test_two_beat_processes_at_once_still_send_each_member_one_message(campaign, processes):
    beats = [processes.beat(), processes.beat()]
    processes.worker(pool="prefork", concurrency=2, **SLOW)  # the two beats' launches and sweeps really overlap

    wait_for_the_campaign_to_finish(campaign)

    for beat in beats:  # both beats were really at work
        assert "Sending due task send due (fault suite)" in beat.log_path.read_text()
    sent, unknown = assert_one_message_per_member(campaign)
    assert not unknown and len(sent) == MEMBERS
    assert sum(sink_members().values()) == MEMBERS
