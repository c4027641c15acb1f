"""Reads that may be a few seconds stale come from a real streaming replica
(crm/replica.py): the dashboard, list counts, circle previews, exports, reports
and the API's standing; the pages after a save read the primary, and a
replica that lags or does not answer is passed over.

Needs REPLICA_DATABASE_URL (a replica of DATABASE_URL's server: scripts/pg_replica);
CI runs this module against one. Every test pauses the replica's replay at some
point to tell which copy answered: a paused replica does not know what the
primary wrote since."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm import replica
from crm.models import AuditAction, AuditEvent, Member
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

if not replica.configured():
    reason = "no REPLICA_DATABASE_URL (scripts/pg_replica starts a primary with a replica)"
    if os.environ.get("CRM_REQUIRE_REPLICA") == "1":
        raise RuntimeError(f"CRM_REQUIRE_REPLICA=1 but {reason}")
    pytest.skip(reason, allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


def replica_at_primary(position: str, what: str, seconds: float = 30) -> None:
    """Wait until the replica's WAL position (received or replayed) reaches the primary's current one."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        target = cursor.fetchone()[0]
    deadline = time.monotonic() + seconds
    with connections["replica"].cursor() as cursor:
        while True:
            cursor.execute(f"SELECT {position}() >= %s::pg_lsn", [target])
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, f"the replica did not {what}"
            time.sleep(0.05)


def caught_up() -> None:
    """Wait until the replica has replayed everything the primary has written."""
    replica_at_primary("pg_last_wal_replay_lsn", "catch up")


def received() -> None:
    """Wait until the (paused) replica has received what the primary wrote: from then on it lags."""
    replica_at_primary("pg_last_wal_receive_lsn", "receive the primary's writes")


@contextmanager
def replay_paused():
    """The replica stops applying what it receives, and resumes after."""
    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with connections["replica"].cursor() as cursor:
            cursor.execute("SELECT pg_wal_replay_resume()")
        replica.replica_forget()


@pytest.fixture(autouse=True)
def _fresh_replica_state(settings):
    settings.REPLICA_CHECK_SECONDS = 0  # every read asks the replica its lag: the tests change it under the router
    replica.replica_forget()
    yield
    replica.replica_forget()


def members(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        MemberFactory(external_id=f"R{i:04d}")


def shown_count(html: str) -> int:
    """The member list's count, as the admin shows it ("3 members", "共 3 位会员" …): the first number before "member"."""
    found = re.search(r"(\d[\d,]*)\s+(?:members|member)\b", html)
    assert found, html[:2000]
    return int(found.group(1).replace(",", ""))


def test_list_counts_come_from_the_replica_until_it_lags_too_far(admin_client, settings):
    members(3)
    caught_up()
    url = reverse("admin:crm_member_changelist")
    with CaptureQueriesContext(connections["replica"]) as on_replica:
        assert shown_count(admin_client.get(url).content.decode()) == 3
    assert on_replica.captured_queries, "the count was not read from the replica"

    with replay_paused():
        members(2, start=3)
        received()
        # Behind, but within REPLICA_MAX_LAG_SECONDS: the count is the replica's, a few seconds old.
        assert shown_count(admin_client.get(url).content.decode()) == 3
        settings.REPLICA_MAX_LAG_SECONDS = 0
        replica.replica_forget()
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert shown_count(admin_client.get(url).content.decode()) == 5  # too far behind: the primary counts
        assert all("pg_last_wal" in query["sql"] for query in on_replica.captured_queries)  # only asked its lag


def test_the_page_after_a_save_reads_the_primary(admin_client):
    members(1)
    caught_up()
    with replay_paused():
        members(1, start=1)
        received()
        url = reverse("admin:crm_member_changelist")
        assert shown_count(admin_client.get(url).content.decode()) == 1  # stale: the replica's

        saved = admin_client.post(reverse("admin:auth_group_add"), {"name": "回访组"})
        assert saved.status_code == 302
        assert saved.cookies[replica.PIN_COOKIE]["max-age"] == django_settings.REPLICA_PIN_SECONDS
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert shown_count(admin_client.get(url).content.decode()) == 2  # pinned by the cookie: the primary's
        assert not on_replica.captured_queries

        admin_client.cookies.pop(replica.PIN_COOKIE)
        assert shown_count(admin_client.get(url).content.decode()) == 1  # the pin has lapsed: the replica again


def test_the_dashboard_circle_preview_and_export_read_the_replica(admin_client, shipped_defaults):
    from segments.services import tiers_recompute

    def big_spender(external_id: str) -> Member:
        member = MemberFactory(external_id=external_id)
        OrderFactory(member=member, amount=Decimal("6000"), ordered_at=dt.datetime.now(tz=SHANGHAI) - dt.timedelta(days=1))
        return member

    big_spender("R0000"), big_spender("R0001")
    tiers_recompute()
    caught_up()
    with replay_paused():
        big_spender("R0002")
        tiers_recompute()
        received()
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            assert admin_client.get(reverse("admin:index")).status_code == 200
        assert any("campaigns_kpisnapshot" in query["sql"] for query in on_replica.captured_queries)

        form = {"name": "大单会员", "kind": "circle", "active": "on", "description": "", "rule_spend_365_min": "5000"}
        preview = admin_client.post(reverse("admin:segments_circle_preview"), form)
        assert preview.json()["members"] == 2  # the replica's: the third big spender is not there yet
        assert replica.PIN_COOKIE not in preview.cookies  # a preview writes nothing: no pin

        form = admin_client.get(reverse("admin:crm_member_export")).context["form"]
        data = {name: "on" for name, field in form.fields.items() if field.widget.input_type == "checkbox"}
        data["format"] = next(value for value, label in form.fields["format"].choices if label == "csv")
        if "resource" in form.fields:
            data["resource"] = form.fields["resource"].choices[0][0]
        exported = admin_client.post(reverse("admin:crm_member_export"), data)
        text = exported.content.decode("utf-8-sig")
        assert "R0000" in text and "R0001" in text and "R0002" not in text  # the replica's rows
        assert replica.PIN_COOKIE not in exported.cookies
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT, summary__endswith=": 2").exists()  # audited on the primary


def test_the_standing_api_reads_the_replica(client, shipped_defaults):
    from api.keys import client_create

    _shop, key = client_create(name="mini-program", scopes=["standing"])
    members(1)
    caught_up()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    with CaptureQueriesContext(connections["replica"]) as on_replica:
        assert client.get("/api/v1/members/R0000/standing", **headers).status_code == 200
    assert any("loyalty_balance" in query["sql"] for query in on_replica.captured_queries)
    with replay_paused():
        members(1, start=1)
        received()
        assert client.get("/api/v1/members/R0001/standing", **headers).status_code == 404  # not on the replica yet
    caught_up()
    assert client.get("/api/v1/members/R0001/standing", **headers).status_code == 200


def test_a_replica_that_does_not_answer_is_passed_over(admin_client):
    members(2)
    caught_up()
    conn = connections["replica"]
    port = conn.settings_dict["PORT"]
    conn.close()
    conn.settings_dict["PORT"] = 9  # nothing listens there
    try:
        replica.replica_forget()
        response = admin_client.get(reverse("admin:crm_member_changelist"))
        assert response.status_code == 200 and shown_count(response.content.decode()) == 2
        assert admin_client.get(reverse("admin:index")).status_code == 200
    finally:
        conn.close()
        conn.settings_dict["PORT"] = port


def test_a_campaign_report_reads_the_replica(admin_client, shipped_defaults):
    from django.utils import timezone

    from campaigns.models import Delivery, DeliveryStatus
    from tests.campaigns.conftest import campaign_for

    now, day = timezone.now(), dt.timedelta(days=1)
    member = MemberFactory(external_id="R0000")
    campaign = campaign_for(name="回访")
    Delivery.objects.create(
        campaign=campaign, variant=campaign.variants.get(), member=member, channel="sms", status=DeliveryStatus.SENT, due_at=now - 3 * day, sent_at=now - 3 * day,
    )
    OrderFactory(member=member, amount=Decimal("100"), ordered_at=now - 2 * day)
    url = reverse("admin:campaigns_campaign_report", args=[campaign.pk])
    caught_up()
    with replay_paused():
        OrderFactory(member=member, amount=Decimal("50"), ordered_at=now - day)
        received()
        assert admin_client.get(url).context["report"]["rows"][0]["revenue"] == Decimal("100.00")  # the replica's
    caught_up()
    assert admin_client.get(url).context["report"]["rows"][0]["revenue"] == Decimal("150.00")
