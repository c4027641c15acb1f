"""What the nightly housekeeping prunes of the API: an Idempotency-Key's answer is
replayed for 7 days, after which a retry is taken in again (harmlessly: the same
upsert); finished webhook events go after 90 days, pending ones never."""

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from api.models import ApiClient, IdempotentAnswer, WebhookEvent, WebhookStatus
from crm.models import Member

pytestmark = pytest.mark.django_db


def test_a_key_is_replayed_for_seven_days_then_a_retry_is_taken_in_again(call):
    body = {"items": [{"external_id": "M1", "name": "张三"}]}
    start = timezone.now()
    first = call("POST", "/members", body, idempotency_key="batch-1")
    assert first.json()["created"] == 1
    with time_machine.travel(start + dt.timedelta(days=6, hours=23)):
        call_command("housekeeping")
        assert call("POST", "/members", body, idempotency_key="batch-1").json() == first.json()  # replayed
    with time_machine.travel(start + dt.timedelta(days=7, minutes=1)):
        call_command("housekeeping")
        assert not IdempotentAnswer.objects.exists()
        again = call("POST", "/members", body, idempotency_key="batch-1")
    assert again.status_code == 200 and again.json()["unchanged"] == 1 and again.json()["created"] == 0
    assert Member.objects.filter(external_id="M1").count() == 1


def test_finished_webhook_events_go_after_ninety_days_and_pending_ones_stay(make_key):
    make_key("shop", scopes=["standing"], webhook_url="https://shop.example/hooks")
    client = ApiClient.objects.get(name="shop")
    start = timezone.now()
    events = {
        status: WebhookEvent.objects.create(client=client, kind="member.tier_changed", payload={"to": "B"}, status=status)
        for status in (WebhookStatus.DELIVERED, WebhookStatus.FAILED, WebhookStatus.PENDING)
    }
    with time_machine.travel(start + dt.timedelta(days=89)):
        call_command("housekeeping")
    assert WebhookEvent.objects.count() == 3
    with time_machine.travel(start + dt.timedelta(days=91)):
        call_command("housekeeping")
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [events[WebhookStatus.PENDING].pk]


def test_hourly_call_counts_are_kept_for_four_hundred_days(call, settings):
    from api import usage
    from api.models import ApiUsage

    settings.API_USAGE_FLUSH_SECONDS = 0
    start = timezone.now()
    with time_machine.travel(start - dt.timedelta(days=401)):
        call("GET", "/members/M1/standing")
        usage.flush()
    call("GET", "/members/M1/standing")
    usage.flush()
    assert ApiUsage.objects.count() == 2
    call_command("housekeeping")
    assert ApiUsage.objects.get().hour > start - dt.timedelta(hours=2)  # this hour's count stays, last year's went
