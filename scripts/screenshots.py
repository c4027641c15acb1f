"""The README's tour pictures, taken from a running demo (scripts/start):

    .venv/bin/python scripts/screenshots.py http://127.0.0.1:8000 admin PASSWORD [leader0001 PASSWORD]

Writes docs/dashboard.png (the admin home), docs/member.png (a member's page)
and, with a leader's login, docs/leader_phone.png (his worklist on a 390 px
phone). Uses Debian's Chromium through Playwright, as the browser tests do."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent.parent / "docs"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True, "locale": "zh-CN"}


def login(page, url: str, username: str, password: str, next_path: str = "/admin/") -> None:
    page.goto(f"{url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")


def main(url: str, username: str, password: str, leader: str = "", leader_password: str = "") -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        desk = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        page = desk.new_page()
        login(page, url, username, password)
        page.locator(".crm-dashboard").screenshot(path=str(DOCS / "dashboard.png"))
        page.goto(f"{url}/admin/crm/member/?o=-1")
        page.locator("#result_list tbody tr th a").first.click()
        page.wait_for_load_state("networkidle")
        page.locator("#content").screenshot(path=str(DOCS / "member.png"))
        if leader:
            phone = browser.new_context(**PHONE).new_page()
            login(phone, url, leader, leader_password, "/leader/")
            phone.wait_for_selector("[data-testid=card]")
            phone.screenshot(path=str(DOCS / "leader_phone.png"), full_page=False)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
