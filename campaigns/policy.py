"""The sending rules as pure functions over plain values: quiet hours, the
member's usual hour, the frequency cap. Times are local (Asia/Shanghai)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone


@dataclass(frozen=True)
class Rules:
    quiet_start: dt.time = dt.time(20, 0)
    quiet_end: dt.time = dt.time(8, 0)
    usual_hour: bool = True
    cap_messages: int = 3
    cap_days: int = 7

    @classmethod
    def of(cls, policy) -> Rules:
        return cls(policy.quiet_start, policy.quiet_end, policy.usual_hour, policy.cap_messages, policy.cap_days)


def in_quiet_hours(moment: dt.datetime, rules: Rules) -> bool:
    clock = timezone.localtime(moment).time()
    start, end = rules.quiet_start, rules.quiet_end
    if start == end:
        return False
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def _at(day: dt.date, clock: dt.time) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, clock))


def quiet_end_after(moment: dt.datetime, rules: Rules) -> dt.datetime:
    """The first moment at or after `moment` outside quiet hours."""
    if not in_quiet_hours(moment, rules):
        return moment
    local = timezone.localtime(moment)
    end = _at(local.date(), rules.quiet_end)
    return end if end > moment else _at(local.date() + dt.timedelta(days=1), rules.quiet_end)


def send_time(moment: dt.datetime, usual_hour: int | None, rules: Rules) -> dt.datetime:
    """When a marketing message that may go from `moment` on should go.

    The member's usual order hour, when known and outside quiet hours, within
    the next day (now, if this is that hour); else the first moment outside
    quiet hours."""
    if rules.usual_hour and usual_hour is not None:
        local = timezone.localtime(moment)
        slot = _at(local.date(), dt.time(usual_hour))
        if not in_quiet_hours(slot, rules):
            if local.hour == usual_hour:
                return moment
            return slot if slot > moment else _at(local.date() + dt.timedelta(days=1), dt.time(usual_hour))
    return quiet_end_after(moment, rules)


def send_times_by_hour(moment: dt.datetime, rules: Rules) -> dict[int | None, dt.datetime]:
    """send_time for every usual hour (and None), so that SQL can pick one per member with a CASE."""
    return {hour: send_time(moment, hour, rules) for hour in [None, *range(24)]}


def cap_reached(sent_in_window: int, rules: Rules) -> bool:
    return sent_in_window >= rules.cap_messages
