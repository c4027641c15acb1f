"""History from the orders: a past day's tiers, as history_rebuild writes them
and as a recompute as of that day places members, and the dashboard they fill."""

import datetime as dt
import json
import random
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse

from campaigns.dashboard.kpi import end_of
from campaigns.dashboard.models import KpiSnapshot, SnapshotKind
from crm.models import Member
from segments.days import day_end
from segments.models import ChangeReason, CircleMembership, MemberMetrics, Tier, TierChange, TierPin
from segments.services import tiers_recompute
from tests.crm.factories import SHANGHAI, MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)
START = TODAY - dt.timedelta(days=120)


@pytest.fixture
def today():
    with time_machine.travel(NOON, tick=False):
        yield TODAY


@pytest.fixture
def shop(today):
    """60 members over 18 months of random orders, with buyers crossing every tier
    edge somewhere in the range; one registered and buying only late in it, one buying late
    whose registration time is unknown, one pinned."""
    rng = random.Random(20261206)
    members = [MemberFactory(registered_at=NOON - dt.timedelta(days=rng.randint(130, 600))) for _ in range(60)]
    for member in members[:50]:
        for _ in range(rng.choice([1, 2, 4, 8, 14, 25])):
            at = NOON - dt.timedelta(days=rng.uniform(1, 540))
            OrderFactory(member=member, ordered_at=max(at, member.registered_at), amount=Decimal(rng.randint(3000, 300000)) / 100,
                         status="paid" if rng.random() > 0.1 else "refunded")
    late = MemberFactory(registered_at=NOON - dt.timedelta(days=40))
    OrderFactory(member=late, ordered_at=NOON - dt.timedelta(days=35), amount=Decimal("88"))
    unknown = MemberFactory(registered_at=None)  # no registration time: nothing says he joined late
    OrderFactory(member=unknown, ordered_at=NOON - dt.timedelta(days=20), amount=Decimal("66"))
    pinned = members[55]
    TierPin.objects.create(member=pinned, tier=Tier.objects.get(code="A"), starts_on=START + dt.timedelta(days=20),
                           ends_on=START + dt.timedelta(days=50), reason="大客户")
    return {"members": members, "late": late, "pinned": pinned, "unknown": unknown}


def rebuilt_tiers(day: dt.date) -> dict[int, str]:
    """Each member's tier on day as the tier history says: his latest move before the day ends."""
    tiers: dict[int, str] = {}
    for member_id, code in TierChange.objects.filter(at__lt=end_of(day)).order_by("at", "id").values_list("member_id", "to_tier__code"):
        tiers[member_id] = code
    return tiers


def snapshot_counts(day: dt.date) -> dict[str, int]:
    out = StringIO()
    call_command("kpi_snapshot", "--as-of", day.isoformat(), "--json", stdout=out)
    return {code: figures["members"] for code, figures in json.loads(out.getvalue())["tiers"].items()}


def test_each_rebuilt_day_has_the_tiers_a_recompute_as_of_that_day_gives(shop):
    call_command("history_rebuild", "--from", START.isoformat(), "--step", "week", stdout=StringIO())
    days = [START, START + dt.timedelta(weeks=3), START + dt.timedelta(weeks=8), TODAY - dt.timedelta(days=1)]
    rebuilt = {day: (rebuilt_tiers(day), snapshot_counts(day)) for day in days}
    assert shop["late"].pk not in rebuilt[START][0]  # not a member yet on the first day
    assert rebuilt[START][0][shop["unknown"].pk] == "C"  # a member whose registration time is unknown is there from the start
    assert rebuilt[days[-1]][0][shop["late"].pk] == "C"
    assert rebuilt[START + dt.timedelta(weeks=3)][0][shop["pinned"].pk] == "A"  # the pin was in force
    assert len({tuple(sorted(counts.items())) for _tiers, counts in rebuilt.values()}) > 1  # the mix moved over the range

    for day in days:
        TierChange.objects.all().delete()
        MemberMetrics.objects.all().delete()
        tiers_recompute(as_of=day)
        recomputed = dict(MemberMetrics.objects.values_list("member_id", "tier__code"))
        assert rebuilt[day][0] == recomputed, day
        assert rebuilt[day][1] == snapshot_counts(day), day


def test_a_recompute_as_of_a_past_day_records_its_moves_at_that_days_end(shop):
    day = TODAY - dt.timedelta(days=30)
    tiers_recompute(as_of=day)
    assert set(TierChange.objects.values_list("at", flat=True)) == {day_end(day)}
    assert set(CircleMembership.objects.values_list("since", flat=True)) <= {day_end(day)}
    counts = snapshot_counts(day)
    assert sum(counts.values()) == MemberMetrics.objects.count() == Member.objects.count()  # the late member had registered by then
    assert MemberMetrics.objects.filter(member=shop["late"], tier__code="C").exists()

    tiers_recompute(as_of=TODAY)
    assert TierChange.objects.filter(at=NOON).exists()  # today's run: now, as before


def test_the_rebuild_stops_before_recorded_history_and_replaces_its_own_moves(shop):
    tiers_recompute(as_of=TODAY - dt.timedelta(days=10))  # recorded history starts on that day
    out = StringIO()
    call_command("history_rebuild", "--from", START.isoformat(), "--step", "day", "--no-snapshots", stdout=out)
    assert str(TODAY - dt.timedelta(days=1)) in out.getvalue()  # the asked end, said as not reached
    rebuilt = TierChange.objects.filter(reason=ChangeReason.REBUILD)
    assert rebuilt.latest("at").at <= day_end(TODAY - dt.timedelta(days=11))
    first = sorted(rebuilt.values_list("member_id", "to_tier_id", "at"))
    call_command("history_rebuild", "--from", START.isoformat(), "--step", "day", "--no-snapshots", stdout=StringIO())
    assert sorted(TierChange.objects.filter(reason=ChangeReason.REBUILD).values_list("member_id", "to_tier_id", "at")) == first

    with pytest.raises(CommandError, match=str(TODAY - dt.timedelta(days=10))):
        call_command("history_rebuild", "--from", (TODAY - dt.timedelta(days=5)).isoformat(), stdout=StringIO())
    with pytest.raises(CommandError, match=str(TODAY - dt.timedelta(days=1))):
        call_command("history_rebuild", "--from", START.isoformat(), "--to", TODAY.isoformat(), stdout=StringIO())


def test_after_a_rebuild_the_home_page_shows_trends_and_the_migration_matrix(shop, admin_client):
    call_command("history_rebuild", "--from", (TODAY - dt.timedelta(days=60)).isoformat(), "--step", "day", stdout=StringIO())
    tiers_recompute(as_of=TODAY)
    call_command("kpi_snapshot", stdout=StringIO())
    assert KpiSnapshot.objects.filter(kind=SnapshotKind.BASE).count() == 61
    home = admin_client.get(reverse("admin:index")).content.decode()
    trends = home[home.index('class="crm-trends"'):].split("</figure>")[:-1]
    charted = {trend.split("<figcaption>")[1].split("</figcaption>")[0] for trend in trends if "<svg" in trend}
    # The base's trends (churn risk only today has: a rebuilt day has no risk bands; no member is new here).
    assert {"members", "GMV (365 days)", "repurchase rate"} <= charted
    matrix = KpiSnapshot.objects.get(day=TODAY, kind=SnapshotKind.MIGRATION).figures
    assert matrix["members"] > 0 and matrix["matrix"]


def test_the_import_page_offers_the_rebuild_and_a_worker_runs_it(shop, admin_client):
    tiers_recompute(as_of=TODAY)
    page = admin_client.get(reverse("admin:crm_importjob_changelist")).content.decode()
    offer = reverse("admin:campaigns_kpisnapshot_rebuild")
    assert offer in page
    form = admin_client.get(offer)
    assert form.status_code == 200
    assert form.context["form"].initial["start"] == TODAY - dt.timedelta(days=365)
    response = admin_client.post(offer, {"start": (TODAY - dt.timedelta(days=28)).isoformat(), "end": "", "step": "week"}, follow=True)
    assert TierChange.objects.filter(reason=ChangeReason.REBUILD).exists()  # eager worker in tests
    assert KpiSnapshot.objects.filter(kind=SnapshotKind.BASE, day=TODAY - dt.timedelta(days=28)).exists()
    text = response.content.decode()
    assert "data-testid=\"history-done\"" in text
    bad = admin_client.post(offer, {"start": (TODAY + dt.timedelta(days=3)).isoformat(), "end": "", "step": "week"})
    assert bad.status_code == 200 and bad.context["form"].errors


def test_after_a_rebuild_a_member_is_in_his_tier_since_his_rebuilt_move_not_since_recording_began(shop, admin_client):
    lapsing = MemberFactory(registered_at=NOON - dt.timedelta(days=400))
    for days in (200, 150, 91):  # silver until yesterday (90 days since his last order), prospect today
        OrderFactory(member=lapsing, ordered_at=NOON - dt.timedelta(days=days), amount=Decimal("400"))
    tiers_recompute(as_of=TODAY)  # recording begins: every member placed from nothing, now
    for _ in range(2):  # a second rebuild leaves the same
        call_command("history_rebuild", "--from", START.isoformat(), "--step", "day", "--no-snapshots", stdout=StringIO())
        last_rebuilt = {}
        for member_id, tier_id, at in TierChange.objects.filter(reason=ChangeReason.REBUILD).order_by("at", "id").values_list(
                "member_id", "to_tier_id", "at"):
            last_rebuilt[member_id] = (tier_id, at)
        since = dict(MemberMetrics.objects.values_list("member_id", "tier_since"))
        held = {member_id for member_id, tier_id in MemberMetrics.objects.values_list("member_id", "tier_id")
                if last_rebuilt.get(member_id, (None,))[0] == tier_id}
        assert len(held) > 40 and lapsing.pk not in held
        assert all(since[member_id] == last_rebuilt[member_id][1] < NOON for member_id in held)
        assert since[lapsing.pk] == NOON  # moved down when recording began: in his tier since then

    member = shop["members"][0]
    page = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).content.decode()
    assert "tier unchanged: recording began here" in page
    lapsing_page = admin_client.get(reverse("admin:crm_member_change", args=[lapsing.pk])).content.decode()
    assert "B → <strong>C" in lapsing_page  # his first recorded placement continues the rebuilt history
