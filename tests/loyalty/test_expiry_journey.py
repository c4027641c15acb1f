"""The shipped reminder: a member whose points enter the 30 days before they
expire, with points left to lose, gets one message per expiry day; a member who
has spent them does not."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from campaigns.journeys.services import journeys_run
from campaigns.journeys.models import Enrolment, Journey
from loyalty import services
from loyalty.models import Right
from tests.campaigns.conftest import member_with, outbox  # noqa: F401 - the file backend's sink
from tests.crm.factories import SHANGHAI, OrderFactory

pytestmark = pytest.mark.django_db


def test_points_about_to_expire_send_one_reminder(outbox):  # noqa: F811 - the imported fixture
    Journey.objects.exclude(name="积分到期提醒").update(active=False)
    with time_machine.travel(dt.datetime(2025, 3, 1, 10, tzinfo=SHANGHAI), tick=False):
        keeper, spender = member_with(True, name="王芳", gender="F", age_band="45-54"), member_with(True)
        for member in (keeper, spender):
            OrderFactory(member=member, ordered_at=dt.datetime(2025, 3, 1, 9, tzinfo=SHANGHAI), amount=Decimal("520"))
        services.ledgers_settle()
    with time_machine.travel(dt.datetime(2025, 3, 10, 10, tzinfo=SHANGHAI), tick=False):  # past the return window
        services.points_redeem(member=spender, right=Right.objects.get(name="5元无门槛券"), key="spend-most")
        services.adjustment_create(member=spender, ledger="points", amount=-20, reason="冲正测试")  # and the rest
    # 2025's points expire on 1 January 2027: the window opens on 2 December 2026.
    for day in (1, 2, 3, 10):
        moment = dt.datetime(2026, 12, day, 10, tzinfo=SHANGHAI)
        with time_machine.travel(moment, tick=False):
            services.ledgers_settle_nightly()
            journeys_run()
            journeys_run()
    lines = outbox("sms")
    assert len(lines) == 1 and lines[0]["text"].startswith("王姐，您有520积分将在30天内到期")
    assert list(Enrolment.objects.values_list("member_id", "key")) == [(keeper.pk, "points_due:20270101")]
