"""Keys, scopes, rate limits and signatures: every refusal is a problem body, nothing written, no 500."""

import time

import pytest
from django.core.cache import cache
from django.core.management import call_command

from api.keys import client_revoke
from api.models import ApiUsage
from api import usage
from campaigns.backends import sign, signature_valid
from crm.models import Member

pytestmark = pytest.mark.django_db

BODY = {"items": [{"external_id": "M1"}]}


def test_api_key_create_prints_the_key_once_and_keeps_only_its_hash(capsys, call):
    call_command("api_key_create", "pos", "--scopes", "ingest,standing")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    from api.models import ApiClient

    client = ApiClient.objects.get(name="pos")
    assert key.startswith("crm_") and key not in client.key_hash and client.scopes == ["ingest", "standing"]
    assert call("POST", "/members", BODY, key=key).status_code == 200


def test_staff_add_a_client_in_the_admin_and_see_its_key_once(admin_client, call, chinese):
    from django.contrib.admin.models import LogEntry

    from api.models import ApiClient

    form = admin_client.get("/admin/api/apiclient/add/").content.decode()
    assert 'type="checkbox" name="scopes" value="standing"' in form  # scopes ticked, not typed as JSON
    page = admin_client.post("/admin/api/apiclient/add/", {
        "name": "直播购物车", "scopes": ["ingest", "standing"], "rate_per_minute": "600", "webhook_url": "shop.example/crm-hooks",
    })
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    text = page.content.decode()
    client = ApiClient.objects.get(name="直播购物车")
    key = page.context["key"]
    assert key in text and client.signing_secret in text and "只显示这一次" in text
    assert key not in client.key_hash and (client.scopes, client.rate_per_minute) == (["ingest", "standing"], 600)
    assert client.webhook_url == "https://shop.example/crm-hooks"
    assert LogEntry.objects.filter(object_id=str(client.pk)).exists()  # the admin's history names who made it
    assert call("POST", "/members", BODY, key=key).status_code == 200
    assert call("POST", "/coupons/Q123/validate", {"member_external_id": "M1", "amount": "10"}, key=key).status_code == 403
    # The key is not shown again: the client's page has no trace of it.
    assert key not in admin_client.get(f"/admin/api/apiclient/{client.pk}/change/").content.decode()
    # A name taken is refused on the form, and nothing is made.
    again = admin_client.post("/admin/api/apiclient/add/", {"name": "直播购物车", "scopes": ["standing"], "rate_per_minute": "6000"})
    assert again.status_code == 200 and again.context["adminform"].form.errors["name"] and ApiClient.objects.count() == 2


def test_a_lost_key_is_replaced_on_the_clients_page_and_the_old_one_stops(admin_client, call, make_key, chinese):
    from api.models import ApiClient

    client, old_key = make_key("pos", scopes=["ingest"])
    assert call("POST", "/members", BODY, key=old_key).status_code == 200
    page = admin_client.get(f"/admin/api/apiclient/{client.pk}/change/").content.decode()
    assert f'href="/admin/api/apiclient/{client.pk}/rekey/"' in page
    assert "立即失效" in admin_client.get(f"/admin/api/apiclient/{client.pk}/rekey/").content.decode()  # asked first
    assert call("POST", "/members", BODY, key=old_key).status_code == 200  # nothing changed by looking
    answer = admin_client.post(f"/admin/api/apiclient/{client.pk}/rekey/")
    new_key = answer.context["key"]
    assert new_key != old_key and new_key in answer.content.decode()
    assert call("POST", "/members", BODY, key=old_key).status_code == 401
    assert call("POST", "/members", BODY, key=new_key).status_code == 200
    kept = ApiClient.objects.get(pk=client.pk)
    assert (kept.scopes, kept.signing_secret) == (["ingest"], client.signing_secret)  # the rest stays
    client_revoke(kept)
    refused = admin_client.post(f"/admin/api/apiclient/{client.pk}/rekey/", follow=True)
    assert "已吊销的客户端不能生成新密钥" in refused.content.decode()
    assert call("POST", "/members", BODY, key=new_key).status_code == 401


def test_a_routine_rotation_keeps_the_old_key_working_beside_the_new_one_until_it_stops(admin_client, call, make_key, chinese):
    """The shop deploys the new key while the old one still works: no outage. Once the overlap
    ends, or the key is replaced at once, or the client revoked, the old key is refused."""
    from django.utils import timezone

    from api.keys import clients_forget
    from api.models import ApiClient

    client, first_key = make_key("pos", scopes=["ingest"])
    form = admin_client.get(f"/admin/api/apiclient/{client.pk}/rekey/").content.decode()
    assert 'value="24h"' in form and "继续有效 24 小时" in form
    answer = admin_client.post(f"/admin/api/apiclient/{client.pk}/rekey/", {"overlap": "24h"})
    second_key = answer.context["key"]
    assert "旧密钥继续有效至" in answer.content.decode()
    assert call("POST", "/members", BODY, key=first_key).status_code == 200  # still works: the shop has not switched yet
    assert call("POST", "/members", BODY, key=second_key).status_code == 200
    page = admin_client.get(f"/admin/api/apiclient/{client.pk}/change/").content.decode()
    assert f"{client.prefix}：与新密钥并行有效至" in page

    ApiClient.objects.filter(pk=client.pk).update(previous_valid_until=timezone.now() - timezone.timedelta(seconds=1))
    clients_forget()
    assert call("POST", "/members", BODY, key=first_key).status_code == 401  # the overlap is over
    assert call("POST", "/members", BODY, key=second_key).status_code == 200
    assert "已于" in admin_client.get(f"/admin/api/apiclient/{client.pk}/change/").content.decode()

    answer = admin_client.post(f"/admin/api/apiclient/{client.pk}/rekey/", {"overlap": "7d"})
    third_key = answer.context["key"]
    assert call("POST", "/members", BODY, key=second_key).status_code == 200
    answer = admin_client.post(f"/admin/api/apiclient/{client.pk}/rekey/", {"overlap": "0"})  # leaked: at once
    fourth_key = answer.context["key"]
    for stopped in (first_key, second_key, third_key):
        assert call("POST", "/members", BODY, key=stopped).status_code == 401
    assert call("POST", "/members", BODY, key=fourth_key).status_code == 200

    admin_client.post(f"/admin/api/apiclient/{client.pk}/rekey/", {"overlap": "24h"})
    client_revoke(ApiClient.objects.get(pk=client.pk))
    assert call("POST", "/members", BODY, key=fourth_key).status_code == 401  # a revoked client's old key too


def test_staff_change_a_clients_scopes_by_ticking_them(admin_client, make_key):
    client, _key = make_key("pos", scopes=["ingest"])
    answer = admin_client.post(f"/admin/api/apiclient/{client.pk}/change/", {
        "name": "pos", "scopes": ["ingest", "points"], "rate_per_minute": "6000", "webhook_url": "",
        "usage-TOTAL_FORMS": "0", "usage-INITIAL_FORMS": "0", "usage-MIN_NUM_FORMS": "0", "usage-MAX_NUM_FORMS": "0",
    })
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    client.refresh_from_db()
    assert client.scopes == ["ingest", "points"]


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer crm_deadbeef_wrong", "Basic abc"])
def test_a_missing_or_unknown_key_is_401(client, header, db):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    answer = client.post("/api/v1/members", data=BODY, content_type="application/json", **extra)
    assert answer.status_code == 401 and answer["Content-Type"] == "application/problem+json"
    assert not Member.objects.exists()


def test_a_revoked_key_and_a_missing_scope_are_refused(call, make_key):
    client, key = make_key("reader", scopes=["standing"])
    answer = call("POST", "/members", BODY, key=key)
    assert answer.status_code == 403 and "ingest" in answer.json()["detail"]
    client_revoke(client)
    assert call("GET", "/members/M1/standing", key=key).status_code == 401


def test_over_the_rate_is_429_with_retry_after(call, make_key):
    cache.clear()
    _client, key = make_key("slow", scopes=["ingest"], rate_per_minute=2)
    statuses = [call("POST", "/members", BODY, key=key).status_code for _ in range(3)]
    if statuses[-1] != 429:  # the minute turned between two calls: try once more within the next one
        statuses = [call("POST", "/members", BODY, key=key).status_code for _ in range(3)]
    assert statuses[-1] == 429
    answer = call("POST", "/members", BODY, key=key)
    assert 1 <= int(answer["Retry-After"]) <= 60


def test_the_rate_counts_every_server_process_and_this_ones_calls_exactly(make_key):
    from api.keys import rate_limited

    cache.clear()
    client, _key = make_key("busy", scopes=["standing"], rate_per_minute=2000)  # added to the shared count 10 at a time
    at = 1_800_000_000.0 + 5  # 5 s into a minute
    assert [rate_limited(client, now=at + n / 1000) for n in range(1995)] == [0] * 1995
    cache.set(f"api:rate:{client.pk}:{int(at // 60)}", 1995 + 30)  # meanwhile another process served 30
    allowed = 0
    while rate_limited(client, now=at + 2) == 0:
        allowed += 1
    assert allowed < 10  # found out within one batch, not a minute later
    assert rate_limited(client, now=at + 60) == 0  # the next minute starts afresh


def test_a_client_that_must_sign_is_refused_without_a_fresh_signature(call, make_key):
    client, key = make_key("signed", scopes=["ingest"], require_signature=True)
    raw = b'{"items": [{"external_id": "M1"}]}'
    assert call("POST", "/members", raw=raw, key=key).status_code == 401
    stale = str(int(time.time()) - 600)
    answer = call("POST", "/members", raw=raw, key=key, x_timestamp=stale, x_signature=sign(client.signing_secret, stale, raw))
    assert answer.status_code == 401 and "5 minutes" in answer.json()["detail"]
    now = str(int(time.time()))
    tampered = call("POST", "/members", raw=raw.replace(b"M1", b"M2"), key=key, x_timestamp=now, x_signature=sign(client.signing_secret, now, raw))
    assert tampered.status_code == 401
    assert not Member.objects.exists()
    good = call("POST", "/members", raw=raw, key=key, x_timestamp=now, x_signature=sign(client.signing_secret, now, raw))
    assert good.status_code == 200 and Member.objects.filter(external_id="M1").exists()


def test_a_signing_secret_rotation_keeps_the_old_secret_taken_and_signed_on_webhooks_until_it_stops(admin_client, call, make_key, chinese, monkeypatch):
    from django.utils import timezone

    from api import webhooks
    from api.keys import clients_forget
    from api.models import ApiClient, WebhookEvent

    client, key = make_key("signed", scopes=["ingest"], require_signature=True, webhook_url="https://shop.example/hooks")
    old = client.signing_secret
    raw = b'{"items": [{"external_id": "M1"}]}'

    def signed_call(secret: str) -> int:
        now = str(int(time.time()))
        return call("POST", "/members", raw=raw, key=key, x_timestamp=now, x_signature=sign(secret, now, raw)).status_code

    page = admin_client.get(f"/admin/api/apiclient/{client.pk}/change/").content.decode()
    assert f'href="/admin/api/apiclient/{client.pk}/resecret/"' in page and "生成新签名密钥" in page
    answer = admin_client.post(f"/admin/api/apiclient/{client.pk}/resecret/", {"overlap": "24h"})
    new = ApiClient.objects.get(pk=client.pk).signing_secret
    assert new != old and new in answer.content.decode() and key not in answer.content.decode()
    assert "旧签名密钥在" in answer.content.decode()
    assert signed_call(old) == 200 and signed_call(new) == 200  # the shop switches in its own time

    sent = []

    class Taken:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, *args):
            return b""

    monkeypatch.setattr(webhooks.urllib.request, "urlopen", lambda request, timeout: sent.append(request) or Taken())
    event = WebhookEvent.objects.create(client=client, kind="tier_changed", payload={"member": "M1"})
    assert webhooks._post(event, ApiClient.objects.get(pk=client.pk)) == ""
    headers = {name.lower(): value for name, value in sent[0].header_items()}
    body, stamp = sent[0].data, headers["x-timestamp"]
    assert signature_valid(new, stamp, body, headers["x-signature"]) and signature_valid(old, stamp, body, headers["x-signature-previous"])

    ApiClient.objects.filter(pk=client.pk).update(previous_secret_valid_until=timezone.now() - timezone.timedelta(seconds=1))
    clients_forget()
    assert signed_call(old) == 401 and signed_call(new) == 200  # the overlap is over
    assert webhooks._post(event, ApiClient.objects.get(pk=client.pk)) == ""
    assert "x-signature-previous" not in {name.lower() for name, _value in sent[1].header_items()}

    admin_client.post(f"/admin/api/apiclient/{client.pk}/resecret/", {"overlap": "0"})  # leaked: at once
    assert signed_call(new) == 401 and signed_call(ApiClient.objects.get(pk=client.pk).signing_secret) == 200


def test_calls_are_counted_per_client_and_operation(call, make_key, settings):
    settings.API_USAGE_FLUSH_SECONDS = 0
    client, key = make_key("counted", scopes=["ingest"])
    call("POST", "/members", BODY, key=key)
    call("POST", "/members", {"items": [{"external_id": 1}]}, key=key)
    call("GET", "/members/M1/standing", key=key)  # no scope: refused
    usage.flush()
    rows = {(row.operation, row.calls, row.refused) for row in ApiUsage.objects.filter(client=client)}
    assert rows == {("members", 2, 1), ("standing", 1, 1)}


def test_the_log_line_holds_the_route_not_the_member_id(call, caplog):
    with caplog.at_level("DEBUG", logger="api"):
        call("GET", "/members/SECRET-ID-123/standing")
    assert caplog.records and "SECRET-ID-123" not in caplog.text and "standing" in caplog.text


def test_schema_and_offline_docs(client, db):
    schema = client.get("/api/v1/schema/").json()
    assert schema["openapi"].startswith("3.") and "/api/v1/members/{external_id}/standing" in schema["paths"]
    refusal = schema["paths"]["/api/v1/orders"]["post"]["responses"]["422"]["content"]
    assert "application/problem+json" in refusal
    docs = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()


def test_the_shipped_offers_show_each_tier_its_own(call, db):
    from api.models import Offer

    shipped = dict(Offer.objects.values_list("tier__code", "title"))
    assert "限量" in shipped["S"] and "新人" in shipped["C"]


def test_an_offer_image_typed_without_its_scheme_is_kept_as_https(admin_client):
    """Staff paste a CDN address without https://: the offer keeps it as https (the shop's
    pages are https and would not show an http image)."""
    from api.models import Offer
    from segments.models import Tier

    response = admin_client.post("/admin/api/offer/add/", {
        "tier": Tier.objects.get(code="S").pk, "title": "限量新品", "image_url": "cdn.example.com/s.png",
        "products": "[]", "starts_on": "2026-12-01", "position": "0", "active": "on",
    })
    assert response.status_code == 302
    assert Offer.objects.get(title="限量新品").image_url == "https://cdn.example.com/s.png"
