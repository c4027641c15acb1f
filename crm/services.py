"""What several screens and tasks share about members: the consent write, and whose birthday a day is."""

from __future__ import annotations

import calendar
import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import Consent, ConsentEvent, Member


@transaction.atomic
def consent_set(*, member: Member, channel: str, granted: bool, source: str) -> bool:
    """Set one channel's marketing consent; a change is also kept as proof. Returns whether it changed."""
    now = timezone.now()
    consent = Consent.objects.select_for_update().filter(member=member, channel=channel).first()
    if consent is not None and consent.granted == granted:
        return False
    if consent is None:
        Consent.objects.create(member=member, channel=channel, granted=granted, changed_at=now, source=source[:120])
    else:
        consent.granted, consent.changed_at, consent.source = granted, now, source[:120]
        consent.save(update_fields=["granted", "changed_at", "source"])
    ConsentEvent.objects.create(member=member, channel=channel, granted=granted, occurred_at=now, source=source[:120])
    return True


def birthday_on(day: dt.date) -> Q:
    """The members whose birthday falls on day: those born on 29 February on the 28th in other years."""
    condition = Q(birthday__month=day.month, birthday__day=day.day)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        condition |= Q(birthday__month=2, birthday__day=29)
    return condition
