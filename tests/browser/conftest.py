"""Headless Chromium (Debian's, via Playwright) against a live test server."""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls
# the tests make between page actions are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CRM_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (CRM_REQUIRE_BROWSER is set) but was not found")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A page whose scripts, styles and icons all load and run: a stylesheet, script or icon the
    server does not find (a broken static path, the browser's /favicon.ico), or a script error or
    one the CSP refuses, fails the test that met it. Pages themselves may answer 403 or 404 where
    a test means them to."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    documents: set[str] = set()
    failed: list[str] = []  # the browser's own fetches (the icon) show only as console errors
    page.on("request", lambda req: documents.add(req.url) if req.resource_type == "document" else None)
    page.on("console", lambda message: failed.append(f"{message.text} {message.location.get('url')}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: failed.append(f"{error} (script error)"))
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    errors = [line for line in failed if not (line.startswith("Failed to load resource") and line.rsplit(" ", 1)[1] in documents)]
    assert errors == [], "what the pages asked for and did not get, or scripts that failed"


@pytest.fixture
def staff_login(live_server, page, django_user_model, chinese):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-passphrase-42")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-long-passphrase-42")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


LEADER_PASSWORD = "a-long-passphrase-42"


@pytest.fixture
def leader_wang():
    """A transactional test starts from an emptied database: the shipped defaults
    and roles put back, and group leader 王团长 (login wang) with his community 幸福里1群."""
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    from crm import roles
    from crm.roles import roles_sync
    from tests.crm.factories import CommunityFactory, GroupLeaderFactory, UserFactory

    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
    importlib.import_module("campaigns.migrations.0002_defaults").create(apps, None)  # forms of address
    importlib.import_module("campaigns.migrations.0004_journey_defaults").create(apps, None)
    roles_sync(apps)
    user = UserFactory(username="wang", is_staff=True)
    user.set_password(LEADER_PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name=roles.LEADER))
    return CommunityFactory(name="幸福里1群", leader=GroupLeaderFactory(user=user, display_name="王团长"))
