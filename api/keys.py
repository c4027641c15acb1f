"""Keys: made once, kept as a hash, found by their prefix; the rate limit and
the body signature of a request."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from api.models import ApiClient, Scope
from campaigns.backends import signature_valid
from campaigns.models import Coupon
from segments.models import TierChange

KEY_START = "crm_"
SIGNATURE_MAX_AGE = 300  # seconds: the replay window of a signed request


def _hash(key: str) -> str:
    # The key carries 190 random bits: a plain hash is enough (a password hash is for guessable secrets).
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    """(prefix, key): the prefix finds the client, the rest is 192 random bits."""
    prefix = secrets.token_hex(4)
    return prefix, f"{KEY_START}{prefix}_{secrets.token_urlsafe(24)}"


def client_create(*, name: str, scopes: list[str], rate_per_minute: int = 6000, require_signature: bool = False, webhook_url: str = "") -> tuple[ApiClient, str]:
    """A new client and its key, returned once: it is not stored, only its hash."""
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}; use {', '.join(Scope.values)}")
    prefix, key = _new_key()
    with transaction.atomic():
        client = ApiClient.objects.create(
            name=name, prefix=prefix, key_hash=_hash(key), scopes=sorted(set(scopes)), rate_per_minute=rate_per_minute,
            require_signature=require_signature, signing_secret=secrets.token_hex(32), webhook_url=webhook_url,
            # Webhooks tell what happens from now on, not the history.
            tier_change_cursor=TierChange.objects.order_by("-id").values_list("id", flat=True).first() or 0,
            coupon_cursor=Coupon.objects.order_by("-id").values_list("id", flat=True).first() or 0,
        )
    return client, key


# Clients found by their keys, kept in each server process for CLIENT_SECONDS (a query
# less at each of a thousand calls a second): a key revoked in the admin is refused
# by every process within that time.
CLIENT_SECONDS = 10
_clients: dict[str, tuple[float, ApiClient | None]] = {}


def client_for_key(key: str) -> ApiClient | None:
    """The active client of a key, or None (unknown, malformed or revoked): his present key, or
    the one before it until it stops (client_rekey with an overlap)."""
    if not key.startswith(KEY_START) or len(key) > 100:
        return None
    prefix = key[len(KEY_START) :].split("_", 1)[0]
    if not prefix:
        return None
    kept = _clients.get(prefix)
    if kept is not None and kept[0] > time.monotonic():
        client = kept[1]
    else:
        client = ApiClient.objects.filter(Q(prefix=prefix) | Q(previous_prefix=prefix), revoked_at=None).first()
        if len(_clients) > 1000:
            _clients.clear()
        _clients[prefix] = (time.monotonic() + CLIENT_SECONDS, client)
    if client is None:
        return None
    if client.prefix == prefix:
        expected = client.key_hash
    elif client.previous_prefix == prefix and client.previous_valid_until and client.previous_valid_until > timezone.now():
        expected = client.previous_key_hash
    else:
        return None
    return client if hmac.compare_digest(expected, _hash(key)) else None


def clients_forget() -> None:
    _clients.clear()


def clients_revoke(clients) -> int:
    """Revoke the keys of a queryset of clients: this process refuses them at once, the others within CLIENT_SECONDS."""
    count = clients.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    clients_forget()
    return count


def client_rekey(client: ApiClient, *, overlap: dt.timedelta | None = None) -> str:
    """A new key for an active client, returned once (its scopes, rate, usage, webhooks and signing
    secret stay). Without an overlap (a key lost or leaked) the old key is refused by this process
    at once and by the others within CLIENT_SECONDS, as a revoked one is; with one (a routine
    rotation) it keeps working that long beside the new one, so that the shop can deploy the new
    key without an outage. A key replaced before its overlap ended stops with the new rotation."""
    if not client.active:
        raise ValueError("a revoked client gets no new key")
    prefix, key = _new_key()
    if overlap:
        previous = {"previous_prefix": client.prefix, "previous_key_hash": client.key_hash, "previous_valid_until": timezone.now() + overlap}
    else:
        previous = {"previous_prefix": None, "previous_key_hash": "", "previous_valid_until": None}
    _rotation_save(client, {"prefix": prefix, "key_hash": _hash(key), **previous})
    return key


def _rotation_save(client: ApiClient, changes: dict) -> None:
    """Write a rotation's fields to the client and its row; this process forgets the clients it found."""
    for name, value in changes.items():
        setattr(client, name, value)
    ApiClient.objects.filter(pk=client.pk).update(**changes)
    clients_forget()


def client_resecret(client: ApiClient, *, overlap: dt.timedelta | None = None) -> str:
    """A new signing secret for an active client, returned. Without an overlap the old one stops
    at once (on every server within CLIENT_SECONDS); with one, requests signed with it are still
    taken and webhooks carry its signature too (X-Signature-Previous) until the overlap ends."""
    if not client.active:
        raise ValueError("a revoked client gets no new signing secret")
    secret = secrets.token_hex(32)
    if overlap:
        previous = {"previous_signing_secret": client.signing_secret, "previous_secret_valid_until": timezone.now() + overlap}
    else:
        previous = {"previous_signing_secret": "", "previous_secret_valid_until": None}  # nosec B105 - clears the previous secret
    _rotation_save(client, {"signing_secret": secret, **previous})
    return secret


def client_revoke(client: ApiClient) -> None:
    clients_revoke(ApiClient.objects.filter(pk=client.pk))
    client.refresh_from_db(fields=["revoked_at"])


# Each server process counts a client's calls itself and adds them to the shared count (the cache,
# Redis in production) in batches of a 200th of the client's rate, every call once the count nears
# the rate, and at least every RATE_SYNC_SECONDS: a round trip to Redis was a fifth of a standing
# lookup's time. A client gets past its rate by at most (server processes x batch) calls a minute.
RATE_SYNC_SECONDS = 1.0


@dataclass
class _Window:
    """One client's current minute as this process counts it."""

    minute: int
    unsent: int = 0  # calls not yet added to the shared count
    shared: int = 0  # the shared count when this process last added to it
    sent_at: float = 0.0


_rates: dict[int, _Window] = {}  # by client id
_rates_lock = threading.Lock()


def rate_limited(client: ApiClient, *, now: float | None = None) -> int:
    """0 when the call is within the client's rate, else the seconds until the next minute starts (Retry-After).
    A fixed one-minute window, counted in the cache across processes."""
    now = time.time() if now is None else now
    minute = int(now // 60)
    limit = client.rate_per_minute
    batch = max(1, limit // 200)
    with _rates_lock:
        window = _rates.get(client.pk)
        if window is None or window.minute != minute:
            if len(_rates) > 1000:
                _rates.clear()
            window = _rates[client.pk] = _Window(minute)
        window.unsent += 1
        calls = window.shared + window.unsent
        unsent = 0
        if window.unsent >= batch or calls > limit - 2 * batch or now - window.sent_at >= RATE_SYNC_SECONDS:
            unsent, window.unsent, window.sent_at = window.unsent, 0, now
    if unsent:
        name = f"api:rate:{client.pk}:{minute}"
        try:
            calls = cache.incr(name, unsent)
        except ValueError:  # the minute's first
            calls = unsent if cache.add(name, unsent, timeout=120) else cache.incr(name, unsent)
        with _rates_lock:
            window.shared = max(window.shared, calls)
            calls = max(calls, window.shared + window.unsent)
    if calls <= limit:
        return 0
    return max(1, 60 - int(now % 60))


def rates_forget() -> None:
    """This process counts every client's rate afresh (tests: the cache is cleared between them)."""
    with _rates_lock:
        _rates.clear()


def signed(client: ApiClient, stamp: str, body: bytes, signature: str) -> bool:
    """Signed with the client's secret, or with the one before it while its overlap lasts."""
    return any(
        signature_valid(secret, stamp, body, signature, max_age=SIGNATURE_MAX_AGE)
        for secret in (client.signing_secret, client.previous_secret()) if secret
    )
