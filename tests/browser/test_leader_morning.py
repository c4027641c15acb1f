"""A group leader's morning, in Chinese: log in, open today's worklist, read why
and what to say, mark what happened."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.worklist.models import WorklistItem, WorklistOutcome
from campaigns.worklist.services import worklist_build
from segments.services import tiers_recompute
from tests.browser.conftest import LEADER_PASSWORD as PASSWORD
from tests.crm.factories import CommunityFactory, GroupLeaderFactory, MemberFactory, OrderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def morning_list(leader_wang):
    mine = leader_wang
    other = CommunityFactory(name="阳光花园9群", leader=GroupLeaderFactory(display_name="李团长"))
    today = timezone.localdate()
    MemberFactory(name="张桂兰", gender="F", age_band="55+", community=mine, birthday=today.replace(year=1962))
    newcomer = MemberFactory(name="王芳", gender="F", age_band="35-44", community=mine)
    OrderFactory(member=newcomer, ordered_at=timezone.now() - dt.timedelta(days=5), amount=Decimal("58.00"))
    MemberFactory(name="赵强", gender="M", age_band="55+", community=other, birthday=today.replace(year=1960))
    tiers_recompute()
    worklist_build()


def test_a_leader_opens_his_worklist_and_marks_an_item(live_server, page, chinese, morning_list):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "wang")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.click("a:has-text('团长工作清单')")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    table = page.locator("#result_list").inner_text()
    assert "张阿姨，生日快乐！" in table and "今天生日" in table
    assert "王姐，上次的" in table and "5天前首单，还没有第二单" in table
    assert "赵" not in table  # another leader's member

    birthday_row = page.locator("#result_list tbody tr", has_text="张阿姨")
    birthday_row.locator("select[name$='-outcome']").select_option(WorklistOutcome.CONTACTED)
    birthday_row.locator("input[name$='-note']").fill("礼物已送到")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    item = WorklistItem.objects.get(member__name="张桂兰")
    assert (item.outcome, item.note) == (WorklistOutcome.CONTACTED, "礼物已送到")
    follow_up = page.locator("#worklist-follow-up").inner_text()
    assert "王团长" in follow_up and "50%" in follow_up and "李团长" not in follow_up
