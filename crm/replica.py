"""Reads that may be a few seconds stale go to a streaming replica.

With REPLICA_DATABASE_URL set, the database alias "replica" exists and
ReplicaRouter sends a read there only when all of these hold:

- the code reading said a stale answer is fine, by running inside
  stale_reads() (dashboards, reports, exports, list counts, circle previews,
  the API's standing reads);
- the request is not pinned to the primary: a request that writes (any method
  but GET, HEAD, OPTIONS) and the requests of the same browser for
  REPLICA_PIN_SECONDS after it read the primary (a cookie), so that a user
  sees what he has just saved;
- no transaction is open on the primary (what a transaction reads must be
  what it writes on);
- the replica answers and lags at most REPLICA_MAX_LAG_SECONDS behind (asked
  at most every REPLICA_CHECK_SECONDS per process); otherwise the primary
  answers, and nothing fails.

Everything else, writes included, uses "default". Without a replica nothing
changes. Raw SQL that may read stale takes its connection from read_connection()."""

from __future__ import annotations

import functools
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar

from django.conf import settings
from django.db import DatabaseError, connections

REPLICA = "replica"
PIN_COOKIE = "crm_primary"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
log = logging.getLogger(__name__)

_stale_ok: ContextVar[bool] = ContextVar("crm_stale_ok", default=False)
_pinned: ContextVar[bool] = ContextVar("crm_pinned", default=False)
# Per process: (checked at, usable); one thread asks, the others take the answer.
_state = {"checked": -1e9, "usable": False}
_check_lock = threading.Lock()

# The replica's distance behind the primary in seconds: 0 when it has replayed all
# it received (an idle primary sends nothing, and then the last replayed commit is
# old but nothing is missing); NULL on a server that is not in recovery (taken as 0).
LAG_SQL = """
    SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
                WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9) END"""


def configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def _holding(flag: ContextVar[bool]):
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


def stale_reads():
    """Inside it, reads may come from the replica (see the module's rules)."""
    return _holding(_stale_ok)


def stale_ok(view):
    """A view whose reads may be a few seconds stale."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        for arg in args[:2]:  # (request, …) or (self, request, …)
            if hasattr(arg, "COOKIES"):
                arg.crm_reads_only = True  # a POST that only reads (a preview, an export): no pin after it
        with stale_reads():
            return view(*args, **kwargs)

    return wrapped


def pinned_to_primary():
    """Inside it, every read goes to the primary."""
    return _holding(_pinned)


def replica_lag() -> float | None:
    """Seconds the replica is behind, or None when it does not answer."""
    connection = connections[REPLICA]
    try:
        with connection.cursor() as cursor:
            cursor.execute(LAG_SQL)
            return float(cursor.fetchone()[0])
    except DatabaseError as error:
        log.warning("replica unavailable, reading the primary: %s", error)
        connection.close()  # a fresh connection next time
        return None


def replica_usable() -> bool:
    now = time.monotonic()
    if now - _state["checked"] < settings.REPLICA_CHECK_SECONDS:
        return _state["usable"]
    with _check_lock:
        if now - _state["checked"] >= settings.REPLICA_CHECK_SECONDS:
            lag = replica_lag()
            _state["usable"] = lag is not None and lag <= settings.REPLICA_MAX_LAG_SECONDS
            if lag is not None and not _state["usable"]:
                log.warning("replica %.1f s behind (more than %s s): reading the primary", lag, settings.REPLICA_MAX_LAG_SECONDS)
            _state["checked"] = time.monotonic()
    return _state["usable"]


def replica_forget() -> None:
    """Ask the replica again on the next read (tests, after pausing it)."""
    _state["checked"] = -1e9


def read_connection():
    """The connection for raw SQL that may read stale (read_alias's)."""
    return connections[read_alias()]


def read_alias() -> str:
    """The database a read in this context goes to: "replica" or "default"."""
    if not configured() or not _stale_ok.get() or _pinned.get():
        return "default"
    if connections["default"].in_atomic_block:
        return "default"
    return REPLICA if replica_usable() else "default"


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        alias = read_alias()
        return alias if alias == REPLICA else None  # None: Django's own choice (the default database)

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two copies of it

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"


class ReplicaPinMiddleware:
    """Pins a request to the primary when it writes, and the same browser's
    requests for REPLICA_PIN_SECONDS after (a cookie), so that the page after a
    save shows the save."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not configured():
            return self.get_response(request)
        with pinned_to_primary() if PIN_COOKIE in request.COOKIES else nullcontext():
            response = self.get_response(request)
        # Reads of a writing request itself are on the primary unless its view said
        # otherwise (stale_ok): stale_reads() scopes are few and read-only.
        if request.method not in SAFE_METHODS and not getattr(request, "crm_reads_only", False):
            response.set_cookie(PIN_COOKIE, "1", max_age=settings.REPLICA_PIN_SECONDS, httponly=True, samesite="Lax", secure=request.is_secure())
        return response
