"""The churn model's data side: the members' purchase summary read from the
orders, a fit (weekly in the full run, or by manage.py churn_fit), and the fit
a run's scores use (fit_for)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from django.db import connection
from django.utils import timezone

from crm.models import OrderStatus
from segments import churn
from segments.days import local_midnight
from segments.models import ChurnFit, SegmentSettings
from segments.recompute.base import vendor_sql

logger = logging.getLogger(__name__)


CHURN_REFIT_DAYS = 7


CHURN_FIT_SAMPLE = 100_000


def fit_for(as_of: dt.date, config: SegmentSettings, *, refit: bool) -> ChurnFit | None:
    """The fit the scores use: a fresh one when asked and due; None (heuristic) when the shop has too little history."""
    latest = ChurnFit.objects.filter(model=config.churn_model, time_unit=config.churn_time_unit).order_by("-fitted_at").first()
    due = latest is None or latest.as_of <= as_of - dt.timedelta(days=CHURN_REFIT_DAYS)
    if refit and due:
        try:
            return churn_fit(
                as_of=as_of, model=config.churn_model, time_unit=config.churn_time_unit,
                min_members=config.churn_min_members, sample=CHURN_FIT_SAMPLE,
            )
        except churn.FitError as error:
            logger.info("churn model not fitted: %s", error)
            return None
    return latest


def churn_summary(as_of: dt.date, time_unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) per member over every paid order up to the as-of date:
    repeat purchase days (same-day orders merged), first to last, first to as-of."""
    day = vendor_sql("(ordered_at AT TIME ZONE %s)::date", "date(ordered_at, '+8 hours')")
    params = [local_midnight(as_of + dt.timedelta(days=1))]
    tz_params = [timezone.get_current_timezone_name()] if connection.vendor == "postgresql" else []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COUNT(DISTINCT {day}) - 1, MIN({day}), MAX({day}) FROM crm_order
                WHERE status = %s AND ordered_at < %s GROUP BY member_id""",  # nosec B608
            tz_params * 3 + [OrderStatus.PAID, *params],
        )
        rows = cursor.fetchall()
    unit = 7.0 if time_unit == "week" else 1.0
    as_of_ordinal = as_of.toordinal()
    x = np.array([row[0] for row in rows], dtype=float)
    first = np.array([_day(row[1]).toordinal() for row in rows], dtype=float)
    last = np.array([_day(row[2]).toordinal() for row in rows], dtype=float)
    return x, (last - first) / unit, (as_of_ordinal - first) / unit


def _day(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def churn_fit(
    *, as_of: dt.date, model: str, time_unit: str, min_members: int = 1, sample: int | None = None, save: bool = True
) -> ChurnFit:
    """Fit on every member with a paid order up to as_of, or on a fixed random
    sample of them (the recompute's weekly refit: 100k members pin the four
    parameters down as well as a million, in a tenth of the time)."""
    x, t_x, T = churn_summary(as_of, time_unit)  # noqa: N806
    if x.size < min_members:
        raise churn.FitError(f"{x.size} members with orders; at least {min_members} needed to fit")
    if sample and x.size > sample:
        picked = np.random.default_rng(0).choice(x.size, sample, replace=False)
        x, t_x, T = x[picked], t_x[picked], T[picked]  # noqa: N806
    result = churn.fit(model, x, t_x, T)
    fit = ChurnFit(
        as_of=as_of, model=model, time_unit=time_unit, n_members=result.n_members,
        r=result.r, alpha=result.alpha, a=result.a, b=result.b, log_likelihood=result.log_likelihood,
    )
    if save:
        fit.save()
    return fit
