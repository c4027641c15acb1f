"""Every campaign draws its own control group: ten campaigns to the same members
hold back groups that overlap as independent draws would, and the variant
split is independent of the control group.

Mutation check: with the earlier linear split ((id x multiplier + campaign id)
mod a prime), the ten control groups of 10% shared about 90% of their members
and test_ten_campaigns_draw_independent_control_groups failed on every bound."""

import itertools
from collections import Counter

import pytest
from django.db import connection
from scipy import stats

from campaigns import audience, services
from campaigns.models import Delivery, DeliveryStatus, MessageTemplate, Variant
from campaigns.split import CAMPAIGN_CONTROL, JOURNEY_CONTROL, SCALE, bucket, bucket_sql
from crm.models import Consent, Member
from segments.services import tiers_recompute
from tests.campaigns.conftest import NOW, campaign_for

pytestmark = pytest.mark.django_db

MEMBERS, CAMPAIGNS, SHARE = 3000, 10, 0.10


@pytest.fixture
def base(frozen):
    Member.objects.bulk_create(Member(external_id=f"S{n:05d}", name=f"钱{n}", mobile=f"137{n:08d}") for n in range(MEMBERS))
    Consent.objects.bulk_create(Consent(member=m, channel="sms", granted=True) for m in Member.objects.all())
    tiers_recompute(as_of=NOW.date())


def launch_all() -> list:
    """Ten campaigns to tier C, each with a 10% control group and two variants of 50%."""
    campaigns = []
    for _ in range(CAMPAIGNS):
        campaign = campaign_for(control_share=int(SHARE * 100))
        Variant.objects.filter(campaign=campaign).update(share=50)
        Variant.objects.create(campaign=campaign, label="B", template=MessageTemplate.objects.first(), share=50)
        audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
        campaigns.append(campaign)
    return campaigns


def control_groups(campaigns) -> list[set[int]]:
    return [
        set(Delivery.objects.filter(campaign=c, status=DeliveryStatus.CONTROL).values_list("member_id", flat=True))
        for c in campaigns
    ]


def test_ten_campaigns_draw_independent_control_groups(base):
    groups = control_groups(launch_all())
    # Each group's size: binomial(3000, 0.1), mean 300, sd 16.4; these bounds are 4.5 sd.
    for group in groups:
        assert 226 <= len(group) <= 374, [len(g) for g in groups]
    # Any two share about 30 members (3000 x 0.1 x 0.1, sd 5.4), not nearly all of them.
    for one, other in itertools.combinations(groups, 2):
        assert 5 <= len(one & other) <= 60, sorted(len(a & b) for a, b in itertools.combinations(groups, 2))
    # How many of the ten groups each member is in follows binomial(10, 0.1).
    in_groups = Counter(member for group in groups for member in group)
    counts = Counter(in_groups.get(member_id, 0) for member_id in Member.objects.values_list("pk", flat=True))
    observed = [counts[0], counts[1], counts[2], counts[3], sum(n for k, n in counts.items() if k >= 4)]
    expected = [MEMBERS * stats.binom.pmf(k, CAMPAIGNS, SHARE) for k in range(4)]
    expected.append(MEMBERS - sum(expected))
    assert stats.chisquare(observed, expected).pvalue > 0.001, (observed, [round(e) for e in expected])
    assert counts.get(CAMPAIGNS, 0) == 0  # nobody is held back from all ten


def test_the_variant_split_is_independent_of_the_control_group(base):
    campaigns = launch_all()
    rows = Delivery.objects.filter(campaign__in=campaigns)
    table = [
        [rows.filter(status=status, variant__label=label).count() for label in ("A", "B")]
        for status in (DeliveryStatus.CONTROL, DeliveryStatus.QUEUED)
    ]
    assert stats.chi2_contingency(table).pvalue > 0.001, table
    # and the variants of different campaigns are independent draws too
    a_sets = [set(rows.filter(campaign=c, variant__label="A").values_list("member_id", flat=True)) for c in campaigns]
    for one, other in itertools.combinations(a_sets, 2):
        assert 0.20 < len(one & other) / MEMBERS < 0.30  # two independent halves share a quarter


def test_a_relaunch_and_the_dry_run_draw_the_same_group_and_written_rows_keep_their_status(base):
    campaign = launch_all()[0]
    written = dict(Delivery.objects.filter(campaign=campaign).values_list("member_id", "status"))
    # Once launched, the dry run finds nobody new; with the outbox emptied it
    # shows exactly the group the launch wrote, and a relaunch writes it again.
    sql, params = audience.select_sql(campaign, now=NOW, rules=audience.Rules.of(services.SendingPolicy.current()))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT member_id, status FROM ({sql}) AS s", params)  # nosec B608 - test of our own SQL
        assert dict(cursor.fetchall()) == {}  # everyone is in the outbox already
    Delivery.objects.filter(campaign=campaign).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT member_id, status FROM ({sql}) AS s", params)  # nosec B608
        assert dict(cursor.fetchall()) == written
    audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current())
    assert dict(Delivery.objects.filter(campaign=campaign).values_list("member_id", "status")) == written
    # A row already written keeps its status whatever the draw says now: past reports do not change.
    some = next(iter(written))
    Delivery.objects.filter(campaign=campaign, member_id=some).update(status=DeliveryStatus.SENT)
    assert audience.deliveries_create(campaign, now=NOW, policy=services.SendingPolicy.current()) == 0
    assert Delivery.objects.get(campaign=campaign, member_id=some).status == DeliveryStatus.SENT


def test_the_database_and_python_draw_the_same_buckets(base):
    sql, params = bucket_sql(CAMPAIGN_CONTROL, 42)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT m.id, {sql} FROM crm_member m ORDER BY m.id", params)  # nosec B608
        from_sql = dict(cursor.fetchall())
    assert from_sql == {member_id: bucket(CAMPAIGN_CONTROL, 42, member_id) for member_id in from_sql}
    assert all(0 <= value < SCALE for value in from_sql.values())


def test_journeys_draw_their_own_control_groups_too():
    members = range(1, 5001)
    groups = [{m for m in members if bucket(JOURNEY_CONTROL, journey, m) < 1000} for journey in range(1, 6)]
    for one, other in itertools.combinations(groups, 2):
        assert 20 <= len(one & other) <= 80  # 5000 x 0.01 = 50 if independent
    campaign_group = {m for m in members if bucket(CAMPAIGN_CONTROL, 1, m) < 1000}
    assert 20 <= len(groups[0] & campaign_group) <= 80
