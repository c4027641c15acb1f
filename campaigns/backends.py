"""Channel backends, chosen per channel by dotted path (settings.CAMPAIGN_BACKENDS),
like Django's email backends.

A backend takes a list of messages and returns one SendResult per message:
sent (with the gateway's id), retry (a transient error: the request did not
go through, try again later), failed (permanent) or unknown (the request
went out but no answer came back: reconcile, never resend blindly)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils.module_loading import import_string

SENT, RETRY, FAILED, UNKNOWN = "sent", "retry", "failed", "unknown"


@dataclass(frozen=True)
class OutboundMessage:
    delivery_id: int
    campaign_id: int
    member_id: int
    channel: str
    to: str
    text: str
    subject: str = ""

    def as_json(self) -> dict:
        return {
            "id": self.delivery_id,
            "campaign": self.campaign_id,
            "member": self.member_id,
            "channel": self.channel,
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
        }


@dataclass(frozen=True)
class SendResult:
    status: str
    provider_id: str = ""
    error: str = ""


class BaseBackend:
    def __init__(self, channel: str, **options) -> None:
        self.channel = channel
        self.options = options

    def send_messages(self, messages: list[OutboundMessage]) -> list[SendResult]:
        raise NotImplementedError


class ConsoleBackend(BaseBackend):
    """Prints each message (development)."""

    def send_messages(self, messages):
        stream = self.options.get("stream") or sys.stdout
        for message in messages:
            stream.write(f"[{message.channel}] {message.to}: {message.text}\n")
        stream.flush()
        return [SendResult(SENT, provider_id=f"console-{message.delivery_id}") for message in messages]


class FileBackend(BaseBackend):
    """Appends one JSON line per message to <directory>/<channel>.jsonl (the demo's and the benchmark's sink).

    One write() per batch on a file opened for appending, so two worker
    processes never interleave their lines."""

    _lock = threading.Lock()

    def path(self) -> Path:
        directory = Path(self.options.get("directory") or settings.DATA_DIR / "outbox")
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{self.channel}.jsonl"

    def send_messages(self, messages):
        lines = "".join(json.dumps(message.as_json(), ensure_ascii=False) + "\n" for message in messages)
        with self._lock:
            fd = os.open(self.path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
        return [SendResult(SENT, provider_id=f"file-{message.delivery_id}") for message in messages]


class SmtpBackend(BaseBackend):
    """Email through an SMTP server (EMAIL_HOST/EMAIL_PORT, or the OPTIONS host/port)."""

    def send_messages(self, messages):
        connection = get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=self.options.get("host", settings.EMAIL_HOST),
            port=self.options.get("port", settings.EMAIL_PORT),
            timeout=self.options.get("timeout", 10),
            fail_silently=False,
        )
        results = []
        try:
            connection.open()
        except OSError as exc:
            return [SendResult(RETRY, error=f"SMTP connect: {exc}"[:255]) for _ in messages]
        try:
            for message in messages:
                message_id = f"<{uuid.uuid4().hex}@{self.options.get('domain', 'crm.local')}>"
                email = EmailMessage(
                    subject=message.subject or "",
                    body=message.text,
                    from_email=self.options.get("from_email", settings.DEFAULT_FROM_EMAIL),
                    to=[message.to],
                    headers={"Message-ID": message_id, "X-Delivery-Id": str(message.delivery_id)},
                    connection=connection,
                )
                try:
                    email.send()
                    results.append(SendResult(SENT, provider_id=message_id))
                except (socket.timeout, TimeoutError) as exc:
                    results.append(SendResult(UNKNOWN, error=f"SMTP timeout: {exc}"[:255]))
                except Exception as exc:  # smtplib's errors: 5xx permanent, 4xx transient
                    code = getattr(exc, "smtp_code", None) or (next(iter(getattr(exc, "recipients", {}).values()), (None,))[0])
                    status = FAILED if code and 500 <= int(code) < 600 else RETRY
                    results.append(SendResult(status, error=f"SMTP: {exc}"[:255]))
        finally:
            connection.close()
        return results


class HttpGatewayBackend(BaseBackend):
    """An SMS / WeCom gateway behind HTTP: JSON POST of up to `batch` messages,
    signed with HMAC-SHA256 over timestamp + body (headers X-Timestamp, X-Signature).

    The gateway answers {"results": [{"id": …, "status": "ok", "message_id": …} |
    {"id": …, "status": "error", "permanent": true|false, "error": …}]}. A
    timeout after the request went out is an unknown outcome; a refused
    connection or a 429/5xx answer means nothing was taken: retry."""

    def _url_secret(self) -> tuple[str, str]:
        url = self.options.get("url") or settings.GATEWAY_URL
        secret = self.options.get("secret") or settings.GATEWAY_SECRET
        return url, secret

    def send_messages(self, messages):
        batch = int(self.options.get("batch", 100))
        results: list[SendResult] = []
        for start in range(0, len(messages), batch):
            results.extend(self._post(messages[start : start + batch]))
        return results

    def _post(self, messages: list[OutboundMessage]) -> list[SendResult]:
        url, secret = self._url_secret()
        body = json.dumps({"messages": [message.as_json() for message in messages]}, ensure_ascii=False).encode()
        stamp = str(int(time.time()))
        signature = sign(secret, stamp, body)
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's configured gateway
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=float(self.options.get("timeout", 10))) as response:  # nosec B310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            status = RETRY if exc.code == 429 or exc.code >= 500 else FAILED
            return [SendResult(status, error=f"HTTP {exc.code}") for _ in messages]
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                return [SendResult(UNKNOWN, error="gateway timeout after the request was sent") for _ in messages]
            return [SendResult(RETRY, error=f"gateway unreachable: {exc.reason}"[:255]) for _ in messages]
        except (socket.timeout, TimeoutError):
            return [SendResult(UNKNOWN, error="gateway timeout after the request was sent") for _ in messages]
        except ValueError:
            return [SendResult(UNKNOWN, error="gateway answer is not JSON") for _ in messages]
        by_id = {str(item.get("id")): item for item in answer.get("results", [])}
        results = []
        for message in messages:
            item = by_id.get(str(message.delivery_id))
            if item is None:
                results.append(SendResult(UNKNOWN, error="gateway did not report this message"))
            elif item.get("status") == "ok":
                results.append(SendResult(SENT, provider_id=str(item.get("message_id", ""))[:100]))
            else:
                status = FAILED if item.get("permanent", True) else RETRY
                results.append(SendResult(status, error=str(item.get("error", "gateway error"))[:255]))
        return results


def sign(secret: str, stamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, stamp: str, body: bytes, signature: str, *, max_age: int = 300) -> bool:
    if not secret or not stamp.isdigit() or abs(time.time() - int(stamp)) > max_age:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature or "")


def backend_for(channel: str) -> BaseBackend:
    config = settings.CAMPAIGN_BACKENDS.get(channel) or {"BACKEND": "campaigns.backends.FileBackend"}
    return import_string(config["BACKEND"])(channel, **config.get("OPTIONS", {}))
