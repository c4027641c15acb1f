"""A mistyped admin URL is never a server error: every registered admin, asked
for malformed object ids, orderings, pages and filter values, answers as the
admin does (a page, a "does not exist" redirect, 404 or 403), never 5xx.

Mutation check: before the fix, campaigns/campaign/abc/change/ and
crm/importjob/abc/change/ raised ValueError and this walk failed on both."""

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.crm.test_roles import world  # noqa: F401 - every kind of row, so lists show their filters

pytestmark = pytest.mark.django_db

BAD_IDS = ["abc", "1'", "-1", "0", "1.5", "99999999999999999999", "%E4%B8%AD"]
BAD_VALUES = ["abc", "1'", "-1", "9999", "99999999999999999999", "2026-13-45"]
LIST_QUERIES = ["o=abc", "o=99", "o=1.-2", "p=abc", "p=-1", "p=99999", "q=%27", "all=", "e=1", "_to_field=password"]


def models():
    return [(model._meta.app_label, model._meta.model_name) for model in admin.site._registry]


def filter_params(html: str) -> set[str]:
    """The query parameters of the list's own links (filters, sorting, facets)."""
    names = set()
    for href in re.findall(r'href="(\?[^"]*)"', html):
        names.update(name for name, _value in parse_qsl(urlsplit(unescape(href)).query, keep_blank_values=True))
    return names - {"p", "o", "q"}


def test_every_admin_answers_malformed_urls_without_a_server_error(admin_client, world):  # noqa: F811
    errors = []
    admin_client.raise_request_exception = False  # collect every 5xx, not only the first

    def get(url: str):
        response = admin_client.get(url)
        if response.status_code >= 500:
            errors.append((url, response.status_code))
        return response

    for app_label, model_name in models():
        changelist = reverse(f"admin:{app_label}_{model_name}_changelist")
        for bad in BAD_IDS:
            for suffix in ("change/", "delete/", "history/", ""):
                get(f"{changelist}{bad}/{suffix}")
        for query in LIST_QUERIES:
            get(f"{changelist}?{query}")
        page = get(changelist)
        if page.status_code != 200:
            continue
        dates = admin.site._registry[apps.get_model(app_label, model_name)].date_hierarchy
        hierarchy = {f"{dates}__{part}" for part in ("year", "month", "day")} if dates else set()
        for name in filter_params(page.content.decode()) | hierarchy:
            for bad in BAD_VALUES:
                get(f"{changelist}?{name}={bad}")
    assert not errors, "\n".join(f"{status} {url}" for url, status in errors)


def test_a_malformed_campaign_or_import_id_is_the_admins_usual_redirect(admin_client):
    for url in ("/admin/campaigns/campaign/abc/change/", "/admin/crm/importjob/abc/change/", "/admin/crm/importjob/1'/change/"):
        response = admin_client.get(url)
        assert response.status_code == 302 and response["Location"] == reverse("admin:index"), url
        assert "doesn’t exist" in admin_client.get(response["Location"]).content.decode()
