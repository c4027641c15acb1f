"""Housekeeping: records of routine work, deleted once they are old.

Every order's tier recompute and ledger settle writes a run row, every API batch
sent with an Idempotency-Key keeps its answer, every webhook its delivery: at the
shop's pace these tables grow by thousands of rows a day, and nobody reads the
old ones. Each app registers what of its own may go (in its AppConfig.ready(), as
crm.privacy's sections are), with how long it is kept; the beat runs housekeeping()
every night and `manage.py housekeeping --dry-run` shows what it would delete.

Nothing a member, a report or a later run reads is pruned: the nightly and full
runs, tier history and the ledgers themselves stay."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

BATCH = 5_000  # rows per DELETE: short transactions beside staff's pages and the per-order work


@dataclass(frozen=True)
class Pruner:
    label: str  # what the report calls these rows
    days: Callable[[], int]  # how long they are kept (read when the run starts, so settings apply)
    old: Callable[[dt.datetime], QuerySet]  # the rows from before the cutoff that may go


@dataclass(frozen=True)
class Pruned:
    label: str
    days: int
    rows: int


PRUNERS: list[Pruner] = []


def register(*pruners: Pruner) -> None:
    for pruner in pruners:
        if all(known.label != pruner.label for known in PRUNERS):
            PRUNERS.append(pruner)


def _expired_sessions(cutoff: dt.datetime) -> QuerySet:
    from django.contrib.sessions.models import Session

    return Session.objects.filter(expire_date__lt=cutoff)


def _import_row_errors(cutoff: dt.datetime) -> QuerySet:
    from crm.importing.jobs import FINAL
    from crm.importing.models import ImportRowError

    return ImportRowError.objects.filter(job__status__in=FINAL, job__finished_at__lt=cutoff)


# Staff's sessions in the database (Django's default engine) stay after they expire.
SESSIONS = Pruner("expired staff sessions", lambda: 0, _expired_sessions)
# A file's bad rows quote their cells (names, mobiles): kept while someone mends the file, not for
# ever. The job keeps its counts and says that its rows were deleted.
IMPORT_ERRORS = Pruner("rows with errors of finished imports", lambda: settings.RETENTION_IMPORT_ERRORS_DAYS, _import_row_errors)


def housekeeping(*, now: dt.datetime | None = None, dry_run: bool = False) -> list[Pruned]:
    """Delete (or, dry, count) every registered kind of row older than its retention."""
    now = now or timezone.now()
    report = []
    for pruner in PRUNERS:
        days = pruner.days()
        old = pruner.old(now - dt.timedelta(days=days))
        rows = old.count() if dry_run else _delete(old)
        report.append(Pruned(pruner.label, days, rows))
        if rows and not dry_run:
            logger.info("housekeeping: deleted %d %s older than %d days", rows, pruner.label, days)
    return report


def _delete(old: QuerySet) -> int:
    """In batches by primary key, each its own transaction: no long lock on a table the shop writes to."""
    model = old.model
    deleted = 0
    while True:
        ids = list(old.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return deleted
        gone = model._base_manager.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)
        if not gone:  # taken by a concurrent run meanwhile, or held: never loop on the same rows
            return deleted
        deleted += gone
