"""Big lists are never counted row by row on PostgreSQL."""

import pytest
from django.db import connection
from django.urls import reverse

from crm import paginator
from tests.crm.factories import CommunityFactory, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_table_threshold(monkeypatch):
    """Treat every table as big, so the estimate path runs on a small one."""
    monkeypatch.setattr(paginator, "SMALL_TABLE", 0)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="estimates come from PostgreSQL's statistics")
def test_an_unfiltered_list_shows_the_estimate_and_a_filtered_one_counts(admin_client, big_table_threshold, django_assert_num_queries):
    community = CommunityFactory()
    MemberFactory.create_batch(30)
    MemberFactory.create_batch(4, community=community)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_member")
    html = admin_client.get(reverse("admin:crm_member_changelist")).content.decode()
    assert "about 34 members" in html
    html = admin_client.get(reverse("admin:crm_member_changelist"), {"community": community.pk}).content.decode()
    assert "4 members" in html and "about" not in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="estimates come from PostgreSQL's statistics")
def test_a_count_that_takes_too_long_falls_back_to_the_planner(admin_client, big_table_threshold, monkeypatch):
    MemberFactory.create_batch(10)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_member")
    # The database cancels the count, as a statement_timeout on a huge table would.
    from django.db import OperationalError
    from django.db.models import QuerySet

    real_count = QuerySet.count

    def slow_count(queryset):
        if queryset.model.__name__ == "Member" and queryset.query.where:
            raise OperationalError("canceling statement due to statement timeout")
        return real_count(queryset)

    monkeypatch.setattr(QuerySet, "count", slow_count)
    response = admin_client.get(reverse("admin:crm_member_changelist"), {"has_ordered": "false"})
    assert response.status_code == 200
    assert "about" in response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="estimates come from PostgreSQL's statistics")
def test_a_filter_expected_to_match_many_rows_is_not_counted(admin_client, big_table_threshold, monkeypatch, django_assert_max_num_queries):
    MemberFactory.create_batch(10)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_member")
    monkeypatch.setattr(paginator, "COUNT_UP_TO", 0)  # the planner never expects fewer than 1 row
    response = admin_client.get(reverse("admin:crm_member_changelist"), {"has_ordered": "false"})
    assert "about" in response.content.decode()
    assert not any("COUNT(*)" in query["sql"] for query in connection.queries_log), "the list was counted"


def test_small_tables_are_counted_exactly(admin_client):
    MemberFactory.create_batch(3)
    html = admin_client.get(reverse("admin:crm_member_changelist")).content.decode()
    assert "3 members" in html and "about" not in html


def test_a_deep_page_shows_the_rows_a_plain_slice_shows(admin_client, monkeypatch):
    """Pages read ids first (deep ones) list the same members, in the same order, as the plain slice."""
    MemberFactory.create_batch(120)  # three pages of 50
    response = admin_client.get(reverse("admin:crm_member_changelist"), {"p": "3", "o": "2"})  # sorted by the second column
    plain = [row.pk for row in response.context["cl"].result_list]
    monkeypatch.setattr(paginator, "DEFERRED_FROM", 0)
    response = admin_client.get(reverse("admin:crm_member_changelist"), {"p": "3", "o": "2"})
    deferred = response.context["cl"].result_list
    assert isinstance(deferred, list)  # the two-step read ran
    assert [row.pk for row in deferred] == plain and plain
    assert response.content.decode().count("/change/") >= len(plain)
