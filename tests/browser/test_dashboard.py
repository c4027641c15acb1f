"""The admin home as an operations lead sees it each morning: the figures with
their traffic lights, the trend charts drawn, the tables beside them."""

import datetime as dt
import importlib
from decimal import Decimal

import pytest
import time_machine
from django.apps import apps
from django.utils import timezone

from campaigns.dashboard.kpi import snapshot_build
from segments.services import tiers_recompute
from tests.crm.factories import CommunityFactory, GroupLeaderFactory, MemberFactory, OrderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def four_days_of_figures():
    # A transactional test starts from an emptied database: put the shipped defaults back.
    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
    importlib.import_module("campaigns.migrations.0006_kpi_defaults").create(apps, None)
    now = timezone.now()
    community = CommunityFactory(name="幸福里1群", leader=GroupLeaderFactory(display_name="王团长"))
    for n in range(30):
        member = MemberFactory(community=community, registered_at=now - dt.timedelta(days=400 - n))
        for k in range(n % 9):
            OrderFactory(member=member, ordered_at=now - dt.timedelta(days=3 + k * 11 + n), amount=Decimal(40 + 13 * n))
    for back in (10, 0):
        with time_machine.travel(now - dt.timedelta(days=back), tick=False):
            tiers_recompute()
    today = timezone.localdate()
    for back in (3, 2, 1, 0):
        snapshot_build(today - dt.timedelta(days=back))


def test_the_home_page_shows_the_dashboard_with_charts_and_lights(staff_login, live_server, four_days_of_figures):
    page = staff_login
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#crm-dashboard")
    cards = page.locator(".crm-card")
    assert cards.count() >= 10
    assert page.locator(".crm-card[data-light=green], .crm-card[data-light=yellow], .crm-card[data-light=red]").count() >= 3
    charts = page.locator(".crm-trend svg polyline")
    assert charts.count() >= 2  # members and GMV; rates need buyers in each day's window
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 100  # drawn, not an empty element
    tiers = page.locator("#dashboard-tiers").inner_text()
    assert "C" in tiers and "%" in tiers
    assert "王团长" in page.locator("#dashboard-leaders").inner_text()
    page.locator(".crm-trend details summary").first.click()
    assert page.locator(".crm-trend details").first.locator("table tr").count() == 4  # the table behind the chart: one row a day
