"""What crm.housekeeping may prune of the tier work: the runs of one order's, one import's or
one member's recompute. The nightly and full runs stay (the next night starts from them), as
do runs a tier change or a review points to, and a run still going."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet

from crm.housekeeping import Pruner
from segments.models import ChangeReason, RecomputeRun, RunStatus, TierChange, TierReview


def _scoped_runs(cutoff: dt.datetime) -> QuerySet:
    return (
        RecomputeRun.objects.filter(started_at__lt=cutoff, full=False)
        .exclude(reason=ChangeReason.NIGHTLY)
        .exclude(status=RunStatus.RUNNING)
        .exclude(Exists(TierChange.objects.filter(run=OuterRef("pk"))))
        .exclude(Exists(TierReview.objects.filter(run=OuterRef("pk"))))
    )


PRUNERS = (Pruner("recompute runs of single orders, imports and members", lambda: settings.RETENTION_RUN_DAYS, _scoped_runs),)
