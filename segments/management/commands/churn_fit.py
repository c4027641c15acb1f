"""Fit a churn model on every imported paid order up to a date and print it as JSON."""

from __future__ import annotations

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from segments import churn
from segments.recompute.fit import churn_fit


class Command(BaseCommand):
    help = "Fit BG/NBD or modified BG/NBD by maximum likelihood on the paid orders up to --as-of; print one JSON object."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", type=dt.date.fromisoformat, required=True, help="YYYY-MM-DD, the last day of the history")
        parser.add_argument("--model", choices=churn.MODELS, default=churn.MBGNBD)
        parser.add_argument("--time-unit", choices=("day", "week"), default="week")
        parser.add_argument("--save", action="store_true", help="also store the fit for the recompute to use")

    def handle(self, *args, as_of: dt.date, model: str, time_unit: str, save: bool, **options) -> None:
        try:
            fit = churn_fit(as_of=as_of, model=model, time_unit=time_unit, save=save)
        except churn.FitError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            json.dumps(
                {
                    "model": fit.model,
                    "time_unit": fit.time_unit,
                    "as_of": as_of.isoformat(),
                    "n_members": fit.n_members,
                    "r": fit.r,
                    "alpha": fit.alpha,
                    "a": fit.a,
                    "b": fit.b,
                    "log_likelihood": fit.log_likelihood,
                }
            )
        )
