"""A group leader's morning on his phone (390 px wide, touch, WeChat's browser):
nothing off screen, every touch target at least 44 px, no serious accessibility
violation (axe-core), and the work itself: copy a script, tap an outcome, call."""

import datetime as dt
from decimal import Decimal

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from campaigns.worklist.models import WorklistItem, WorklistOutcome
from campaigns.worklist.services import worklist_build
from crm.models import AuditAction, AuditEvent
from segments.services import tiers_recompute
from tests.browser.conftest import ARTIFACTS, LEADER_PASSWORD as PASSWORD
from tests.crm.factories import MemberFactory, OrderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
    ),
    "locale": "zh-CN",
}
OFF_SCREEN = """() => {
    const width = window.innerWidth;
    const wide = [...document.querySelectorAll('body *')].filter(el => {
        const box = el.getBoundingClientRect();
        return box.width > 0 && box.height > 0 && (box.right > width + 0.5 || box.left < -0.5);
    }).map(el => el.tagName + '.' + el.className + ' ' + (el.textContent || '').trim().slice(0, 20));
    return {scroll: document.documentElement.scrollWidth, width, wide};
}"""
SMALL_TARGETS = """() => [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')]
    .filter(el => { const box = el.getBoundingClientRect(); return box.width > 0 && (box.height < 44 || box.width < 44); })
    .map(el => el.tagName + ' ' + (el.textContent || el.name || '').trim().slice(0, 20) + ' ' + Math.round(el.getBoundingClientRect().width) + 'x' + Math.round(el.getBoundingClientRect().height))"""


@pytest.fixture
def morning(leader_wang):
    mine = leader_wang
    today = timezone.localdate()
    MemberFactory(name="欧阳桂兰", gender="F", age_band="55+", community=mine, birthday=today.replace(year=1962), mobile="13800138001")
    newcomer = MemberFactory(name="王芳", gender="F", age_band="35-44", community=mine, mobile="13900139002")
    OrderFactory(member=newcomer, ordered_at=timezone.now() - dt.timedelta(days=5), amount=Decimal("58.00"))
    for n in range(12):
        MemberFactory(name=f"李{n}号邻居", community=mine)
    tiers_recompute()
    worklist_build()


@pytest.fixture
def phone(browser, live_server, chinese, morning, request):
    context = browser.new_context(**PHONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.goto(f"{live_server.url}/leader/")  # asks for the admin login, then comes back
    page.fill("#id_username", "wang")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("[data-testid=card]")
    page.wait_for_load_state("load")
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def assert_fits_a_phone(page) -> None:
    # The stylesheet applied: a cold first fetch of it can come after the cards are there.
    page.wait_for_load_state("load")
    page.wait_for_function("getComputedStyle(document.body).backgroundColor === 'rgb(243, 244, 246)'")
    layout = page.evaluate(OFF_SCREEN)
    assert layout["scroll"] <= layout["width"] and layout["wide"] == [], layout
    assert page.evaluate(SMALL_TARGETS) == []
    serious = [
        (violation["id"], violation["impact"], [node["target"] for node in violation["nodes"]])
        for violation in Axe().run(page).response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert serious == []


def test_the_worklist_fits_a_phone_and_a_script_copies_for_wechat(phone):
    assert_fits_a_phone(phone)
    cards = phone.locator("[data-testid=card]")
    assert cards.count() == 2
    birthday = phone.locator("[data-testid=card]", has_text="欧阳阿姨")
    birthday.locator("button.copy").tap()
    phone.wait_for_selector("button.copied")
    assert phone.evaluate("navigator.clipboard.readText()") == birthday.locator(".script p").inner_text().strip()
    assert "欧阳阿姨，生日快乐！" in phone.evaluate("navigator.clipboard.readText()")


def test_one_tap_records_an_outcome_and_call_shows_the_number(phone):
    card = phone.locator("[data-testid=card]", has_text="王姐")
    card.locator("input[name=note]").fill("周末再买")
    card.locator("button[value=ordered]").tap()
    phone.wait_for_selector("button[value=ordered][aria-pressed=true]")
    item = WorklistItem.objects.get(member__name="王芳")
    assert (item.outcome, item.note) == (WorklistOutcome.ORDERED, "周末再买")
    assert phone.locator("[data-testid=summary]").inner_text() == "今天 2 位会员，已处理 1 位"

    phone.locator("[data-testid=card]", has_text="欧阳阿姨").locator("button.call").tap()
    tel = phone.wait_for_selector("[data-testid=tel]")
    assert tel.get_attribute("href") == "tel:13800138001"
    assert AuditEvent.objects.filter(action=AuditAction.REVEAL_MOBILE, actor__username="wang").count() == 1
    assert_fits_a_phone(phone)


def test_the_members_list_and_card_fit_a_phone(phone):
    phone.locator("nav.tabs a", has_text="我的会员").tap()
    phone.wait_for_selector("[data-testid=members]")
    assert phone.locator("[data-testid=members] li").count() == 14
    assert_fits_a_phone(phone)
    phone.fill("#q", "9002")
    phone.locator("form.search button").tap()
    phone.wait_for_selector("[data-testid=members] li >> text=王芳")
    assert phone.locator("[data-testid=members] li").count() == 1
    phone.locator("[data-testid=members] a").first.tap()
    phone.wait_for_selector("[data-testid=member-card]")
    assert "139****9002" in phone.locator("[data-testid=member-card]").inner_text()
    assert_fits_a_phone(phone)
