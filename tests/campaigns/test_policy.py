"""Quiet hours, the usual hour and the cap as pure functions (Asia/Shanghai)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from campaigns.policy import Rules, cap_reached, in_quiet_hours, quiet_end_after, send_time

SH = ZoneInfo("Asia/Shanghai")
RULES = Rules()


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SH)


@pytest.mark.parametrize("hour, quiet", [(7, True), (8, False), (12, False), (19, False), (20, True), (23, True), (0, True)])
def test_quiet_hours_wrap_midnight(hour, quiet):
    assert in_quiet_hours(at(22, hour, 30), RULES) is quiet


def test_quiet_hours_in_utc_are_read_in_shanghai():
    # 13:00 UTC is 21:00 in Shanghai.
    assert in_quiet_hours(dt.datetime(2026, 11, 22, 13, tzinfo=dt.timezone.utc), RULES)


def test_a_send_in_quiet_hours_waits_for_the_morning():
    assert quiet_end_after(at(22, 21), RULES) == at(23, 8)
    assert quiet_end_after(at(22, 6), RULES) == at(22, 8)
    assert quiet_end_after(at(22, 10), RULES) == at(22, 10)


def test_a_member_is_sent_at_his_usual_hour_within_a_day():
    assert send_time(at(22, 10), 18, RULES) == at(22, 18)
    assert send_time(at(22, 19), 9, RULES) == at(23, 9)
    assert send_time(at(22, 9, 40), 9, RULES) == at(22, 9, 40)  # that hour now: send now
    assert send_time(at(22, 21), 9, RULES) == at(23, 9)


def test_a_usual_hour_inside_quiet_hours_falls_back_to_the_morning():
    assert send_time(at(22, 21), 22, RULES) == at(23, 8)
    assert send_time(at(22, 10), 6, RULES) == at(22, 10)


def test_the_usual_hour_can_be_switched_off():
    assert send_time(at(22, 10), 18, Rules(usual_hour=False)) == at(22, 10)


def test_cap():
    assert not cap_reached(2, RULES)
    assert cap_reached(3, RULES)
