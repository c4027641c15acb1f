"""The churn models against the literature, and the command on imported orders."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from crm.models import Member, Order
from segments import churn

DATA = Path(__file__).parent / "data"


def cdnow_summary():
    rows = np.loadtxt(DATA / "cdnow_customers_summary.csv", delimiter=",", skiprows=1)
    return rows[:, 1], rows[:, 2], rows[:, 3]


def test_bgnbd_reproduces_the_published_cdnow_fit():
    """Fader, Hardie and Lee (2005), table on the CDNOW 1/10 sample (2,357 customers, weeks):
    r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4."""
    fit = churn.fit(churn.BGNBD, *cdnow_summary())
    assert (round(fit.r, 3), round(fit.alpha, 3), round(fit.a, 3), round(fit.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert round(fit.log_likelihood, 1) == -9582.4
    assert fit.n_members == 2357


def test_only_the_modified_model_lets_a_long_quiet_one_time_buyer_go():
    x, t_x, T = cdnow_summary()
    for model in churn.MODELS:
        fit = churn.fit(model, x, t_x, T)
        params = (fit.r, fit.alpha, fit.a, fit.b)
        one_time_buyer = churn.p_alive(model, params, [0], [0], [38])[0]
        if model == churn.BGNBD:
            assert one_time_buyer == 1.0  # the flaw the modified model fixes
        else:
            assert one_time_buyer < 0.5
        # A regular who stopped long ago is less alive than one who bought last week.
        stopped, recent = churn.p_alive(model, params, [5, 5], [10, 37], [38, 38])
        assert stopped < 0.1 < 0.8 < recent
        expected = churn.expected_purchases(model, params, 4.3, [5, 5], [10, 37], [38, 38])
        assert expected[0] < expected[1]


def test_the_heuristic_fades_after_the_usual_gap():
    alive, expected = churn.heuristic(np.array([10, 30, 90]), np.array([30, 30, 30]))
    assert alive[0] == alive[1] == 1.0 and alive[2] < 0.2
    assert expected[0] == pytest.approx(1.0)


@pytest.mark.django_db
def test_churn_fit_command_fits_the_imported_cdnow_orders():
    """The CDNOW sample's transactions as orders; the calibration period ends 1997-09-30 (week 39)."""
    members: dict[str, Member] = {}
    orders = []
    for line in (DATA / "CDNOW_sample.txt").read_text().splitlines():
        customer, _index, day, _quantity, amount = line.split()
        date = dt.datetime.strptime(day, "%Y%m%d").date()
        if customer not in members:
            members[customer] = Member(external_id=f"CD{customer}")
        orders.append((customer, date, Decimal(amount)))
    Member.objects.bulk_create(members.values())
    ids = dict(Member.objects.values_list("external_id", "id"))
    Order.objects.bulk_create(
        Order(
            order_no=f"CD{n}",
            member_id=ids[f"CD{customer}"],
            ordered_at=dt.datetime.combine(date, dt.time(12), tzinfo=dt.timezone(dt.timedelta(hours=8))),
            amount=amount,
        )
        for n, (customer, date, amount) in enumerate(orders)
    )
    out = StringIO()
    call_command("churn_fit", "--as-of", "1997-09-30", "--model", "bgnbd", "--time-unit", "week", stdout=out)
    result = json.loads(out.getvalue())
    assert result["model"] == "bgnbd" and result["time_unit"] == "week" and result["n_members"] == 2357
    assert [round(result[name], 3) for name in ("r", "alpha", "a", "b")] == [0.243, 4.414, 0.793, 2.426]
    assert round(result["log_likelihood"], 1) == -9582.4
