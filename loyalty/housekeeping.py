"""What crm.housekeeping may prune of the ledger work: the runs of one order's or one import's
settle (scope "members"). The nightly, full, re-award and expiry runs stay: the next night and
the expiry check start from them. The ledgers themselves are never pruned."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import QuerySet

from crm.housekeeping import Pruner
from loyalty.models import SettleRun


def _member_runs(cutoff: dt.datetime) -> QuerySet:
    return SettleRun.objects.filter(scope="members", started_at__lt=cutoff, finished_at__isnull=False)


PRUNERS = (Pruner("ledger runs of single orders and imports", lambda: settings.RETENTION_RUN_DAYS, _member_runs),)
