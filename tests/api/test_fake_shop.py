"""A fake shop over real HTTP (the live server): it creates a member, posts
orders until he moves up a tier, receives the signed webhook (after its own
server was down for a while), reads his standing with the new rights and
offers, redeems points for a coupon, then validates and redeems that coupon."""

import datetime as dt
import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from api import webhooks
from api.keys import client_create
from api.models import Offer, WebhookEvent, WebhookStatus
from campaigns.backends import signature_valid
from crm.models import Member
from loyalty.models import Right
from loyalty.services import adjustment_create
from segments.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """The shop's webhook endpoint on loopback: records what it is sent, answers 204."""

    def __init__(self, port: int) -> None:
        self.port, self.received, self.server = port, [], None

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


class Shop:
    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key

    def __call__(self, method: str, path: str, body=None, **headers):
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def test_a_shop_moves_a_member_up_and_hears_of_it(shipped_defaults, live_server):
    receiver = Receiver(free_port())
    client, key = client_create(name="小程序", scopes=["ingest", "standing", "coupons", "points"], webhook_url=f"http://127.0.0.1:{receiver.port}/hooks")
    silver = Tier.objects.get(code="B")
    Offer.objects.all().delete()  # the shipped examples: this shop sets its own
    Offer.objects.create(tier=silver, title="白银会员专享：高性价比爆品", image_url="https://img.example/b.png", products=["SKU-B1", "SKU-B2"])
    Offer.objects.create(tier=Tier.objects.get(code="S"), title="铂金限量款", products=["SKU-S1"])
    shop = Shop(live_server.url, key)

    status, answer = shop("POST", "/members", {"items": [{"external_id": "M1", "name": "李四", "mobile": "13900139000", "registered_at": "2026-01-05 10:00:00"}]})
    assert (status, answer["created"]) == (200, 1)
    status, standing = shop("GET", "/members/M1/standing")
    assert status == 200 and standing["tier"]["code"] == "C" and standing["offers"] == []

    now = timezone.localtime()
    orders = [
        {"order_no": f"SO-{n}", "member_external_id": "M1", "ordered_at": (now - dt.timedelta(days=n)).isoformat(), "amount": "400.00",
         "lines": [{"sku": f"SKU-{n}", "category": "生鲜", "quantity": 2, "unit_price": "200.00"}]}
        for n in (1, 2, 3)
    ]
    for order in orders:  # one at a time, as the shop takes them
        status, answer = shop("POST", "/orders", {"items": [order]}, **{"Idempotency-Key": order["order_no"]})
        assert status == 200, answer
    status, standing = shop("GET", "/members/M1/standing")
    assert standing["tier"] == {"code": "B", "name": silver.name}
    assert standing["next_tier"]["code"] == "A" and standing["next_tier"]["spend_missing"] == "3800.00"
    assert {right["name"] for right in standing["rights"]} >= {"满减券", "5元无门槛券"}
    assert [offer["title"] for offer in standing["offers"]] == ["白银会员专享：高性价比爆品"]
    assert standing["points"]["pending"] == 1200  # within the 7-day return window

    # The webhook: the shop's server is down at first; the outbox keeps trying.
    webhooks.collect()
    webhooks.deliver()
    event = WebhookEvent.objects.get(client=client, kind="member.tier_changed", payload__to="B")
    event.refresh_from_db()
    assert event.status == WebhookStatus.PENDING and event.attempts == 1 and event.last_error
    receiver.start()
    try:
        webhooks.deliver(now=timezone.now() + dt.timedelta(minutes=5))
        event.refresh_from_db()
        assert event.status == WebhookStatus.DELIVERED
        headers, body = next((h, b) for h, b in receiver.received if json.loads(b)["data"].get("to") == "B")
        assert signature_valid(client.signing_secret, headers["X-Timestamp"], body, headers["X-Signature"])
        message = json.loads(body)
        assert message["id"] == headers["X-Event-Id"] == str(event.event_id)
        assert message["data"]["external_id"] == "M1" and message["data"]["to"] == "B"

        # Points for a coupon, then the coupon at checkout.
        adjustment_create(member=Member.objects.get(external_id="M1"), ledger="points", amount=600, reason="开业补偿")
        right = Right.objects.get(name="5元无门槛券")
        status, redemption = shop("POST", "/members/M1/points/redemptions", {"right_id": right.pk, "key": "redeem-1"})
        assert status == 201 and redemption["points_available"] == 100
        code = redemption["coupon"]["code"]
        status, again = shop("POST", "/members/M1/points/redemptions", {"right_id": right.pk, "key": "redeem-1"})
        assert again["redemption_id"] == redemption["redemption_id"] and again["points_available"] == 100
        status, refused = shop("POST", "/members/M1/points/redemptions", {"right_id": right.pk, "key": "redeem-2"})
        assert status == 409 and "Not enough points" in refused["detail"]

        basket = {"member_external_id": "M1", "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "19.90"}]}
        status, verdict = shop("POST", f"/coupons/{code}/validate", basket)
        assert (status, verdict["valid"], verdict["discount"]) == (200, True, "5.00")
        status, used = shop("POST", f"/coupons/{code}/redeem", basket | {"order_no": "SO-9"})
        assert status == 200 and used["valid"]
        status, twice = shop("POST", f"/coupons/{code}/redeem", basket | {"order_no": "SO-10"})
        assert status == 409
        status, standing = shop("GET", "/members/M1/standing")
        assert standing["coupons"] == [] and standing["points"]["available"] == 100

        webhooks.collect()
        webhooks.deliver()
        kinds = [json.loads(body)["type"] for _headers, body in receiver.received]
        assert kinds.count("coupon.issued") == 1
    finally:
        receiver.stop()
