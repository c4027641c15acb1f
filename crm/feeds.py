"""Tables another system reads by an id cursor (the shop's webhooks read new tier
changes and coupons: api.webhooks.collect), kept safe from the cursor's trap.

Ids are drawn when a row is inserted, not when it commits: a transaction that
inserted ids 1000-1499 may commit after another that inserted 1500. A reader
that saw 1500 and moved its cursor there would never see 1000-1499. So every
writer of such a table holds a shared lock from its insert to its commit
(feed_write), and the reader reads only while it holds that lock alone
(feed_settled): then nothing below the newest visible id is still to commit.
PostgreSQL only; SQLite writes one transaction at a time. Transaction-level
locks, which PgBouncer's transaction pooling keeps."""

from __future__ import annotations

import time

from django.db import connection, transaction

FEED_LOCK = 0xFEED_0001  # pg_advisory_xact_lock key shared by the writers of the feeds


def feed_write() -> None:
    """Call inside the writer's transaction, before its insert; held until it commits."""
    if connection.vendor == "postgresql":
        if connection.get_autocommit():
            raise transaction.TransactionManagementError("feed_write() needs a transaction around the insert it covers")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [FEED_LOCK])


def feed_settled(*, tries: int = 5, pause: float = 0.2) -> bool:
    """Inside the reader's transaction: True once no writer is between its insert and its commit
    (and none can insert until this transaction ends). False when writers held on through every
    try (a nightly recompute's long transaction): read next time. The reader never queues for the
    lock, so writers wait only while it reads (one batch, milliseconds), never behind its wait."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        for attempt in range(tries):
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FEED_LOCK])
            if cursor.fetchone()[0]:
                return True
            if attempt + 1 < tries:
                time.sleep(pause)
    return False
