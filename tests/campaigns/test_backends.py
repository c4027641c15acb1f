"""Each channel backend against a real local peer: an SMTP server and an HTTP
gateway on loopback; and what the outbox records for each kind of outcome."""

import datetime as dt
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from campaigns import audience, sending
from campaigns.backends import FAILED, RETRY, SENT, UNKNOWN, HttpGatewayBackend, OutboundMessage, SmtpBackend, signature_valid
from campaigns.models import Delivery, DeliveryStatus, SendingPolicy
from segments.services import tiers_recompute
from tests.campaigns.conftest import NOW, campaign_for, member_with

SECRET = "s3cret"


def message(n: int, to: str = "13800000000", channel: str = "sms") -> OutboundMessage:
    return OutboundMessage(delivery_id=n, campaign_id=1, member_id=n, channel=channel, to=to, text=f"张阿姨，第{n}条", subject="新品")


class Gateway:
    """A loopback SMS gateway: checks the signature, answers per message as told."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = signature_valid(SECRET, self.headers.get("X-Timestamp", ""), body, self.headers.get("X-Signature", ""))
                payload = json.loads(body)
                gateway.requests.append({"signed": signed, **payload})
                status, answer = gateway.behaviour(payload["messages"]) if signed else (401, {})
                if status == "hang":
                    time.sleep(2)
                    status = 200
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def backend(self, **options):
        return HttpGatewayBackend("sms", url=self.url, secret=SECRET, **options)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    made = []

    def start(behaviour):
        made.append(Gateway(behaviour))
        return made[-1]

    yield start
    for g in made:
        g.close()


def test_the_http_gateway_gets_signed_batches_and_each_answer_is_read(gateway):
    def behaviour(messages):
        results = []
        for m in messages:
            if m["id"] % 3 == 0:
                results.append({"id": m["id"], "status": "error", "permanent": True, "error": "空号"})
            elif m["id"] % 3 == 1:
                results.append({"id": m["id"], "status": "ok", "message_id": f"gw-{m['id']}"})
            else:
                results.append({"id": m["id"], "status": "error", "permanent": False, "error": "busy"})
        return 200, {"results": results}

    peer = gateway(behaviour)
    results = peer.backend(batch=2).send_messages([message(n) for n in range(1, 6)])
    assert [r.status for r in results] == [SENT, RETRY, FAILED, SENT, RETRY]
    assert results[0].provider_id == "gw-1" and results[2].error == "空号"
    assert len(peer.requests) == 3 and all(r["signed"] for r in peer.requests)  # batches of two


def test_a_gateway_timeout_is_unknown_and_a_refusal_or_overload_is_retried(gateway):
    slow = gateway(lambda messages: ("hang", {}))
    assert [r.status for r in slow.backend(timeout=0.5).send_messages([message(1)])] == [UNKNOWN]
    busy = gateway(lambda messages: (503, {}))
    assert [r.status for r in busy.backend().send_messages([message(1)])] == [RETRY]
    closed = HttpGatewayBackend("sms", url="http://127.0.0.1:9/send", secret=SECRET)
    assert [r.status for r in closed.send_messages([message(1)])] == [RETRY]


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_smtp_email_reaches_a_real_smtp_server():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        backend = SmtpBackend("email", host="127.0.0.1", port=port)
        results = backend.send_messages([message(1, "wang@example.cn", "email"), message(2, "nobody@example.cn", "email")])
    finally:
        controller.stop()
    assert [r.status for r in results] == [SENT, FAILED]
    assert len(inbox.envelopes) == 1
    received = inbox.envelopes[0].content.decode()
    assert "X-Delivery-Id: 1" in received and results[0].provider_id in received


@pytest.mark.django_db
def test_the_outbox_records_retry_with_backoff_failure_and_unknown(gateway, settings, frozen):
    members = [member_with(True) for _ in range(3)]
    tiers_recompute(as_of=NOW.date())
    outcome = {members[0].mobile: ("ok", None), members[1].mobile: ("error", False), members[2].mobile: ("error", True)}

    def behaviour(messages):
        results = []
        for m in messages:
            status, permanent = outcome[m["to"]]
            results.append({"id": m["id"], "status": status, "permanent": permanent, "message_id": "gw-1", "error": "x"})
        return 200, {"results": results}

    peer = gateway(behaviour)
    settings.CAMPAIGN_BACKENDS = {"sms": {"BACKEND": "campaigns.backends.HttpGatewayBackend", "OPTIONS": {"url": peer.url, "secret": SECRET}}}
    campaign = campaign_for()
    audience.deliveries_create(campaign, now=NOW, policy=SendingPolicy.current())
    sending.dispatch()
    by_member = {d.member_id: d for d in Delivery.objects.filter(campaign=campaign)}
    assert (by_member[members[0].pk].status, by_member[members[0].pk].provider_id) == (DeliveryStatus.SENT, "gw-1")
    retry = by_member[members[1].pk]
    assert (retry.status, retry.attempts, retry.due_at) == (DeliveryStatus.QUEUED, 1, NOW + dt.timedelta(minutes=2))
    assert by_member[members[2].pk].status == DeliveryStatus.FAILED

    outcome[members[1].mobile] = ("hang", None)
    settings.CAMPAIGN_BACKENDS["sms"]["OPTIONS"]["timeout"] = 0.5
    peer.behaviour = lambda messages: ("hang", {})
    frozen.move_to(NOW + dt.timedelta(minutes=3))
    sending.dispatch()
    assert Delivery.objects.get(pk=retry.pk).status == DeliveryStatus.UNKNOWN  # not resent on its own
    frozen.move_to(NOW + dt.timedelta(hours=2))
    sending.dispatch()
    assert Delivery.objects.get(pk=retry.pk).status == DeliveryStatus.UNKNOWN
    assert len(peer.requests) == 2
