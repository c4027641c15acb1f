"""A member's invite-a-friend progress (邀请有礼), as the mini-program's invite page and the
staff who answer his questions see it: friends counted from the programme's first day, the
rewards given with their coupons, and what the next friends earn."""

import datetime as dt
import html

import pytest
import time_machine
from django.urls import reverse

from campaigns.invites.models import InviteSettings
from campaigns.invites.services import invite_rewards_grant
from campaigns.models import Coupon
from crm.models import EngagementEvent
from tests.crm.factories import SHANGHAI, MemberFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def inviter():
    with time_machine.travel(NOW, tick=False):
        program = InviteSettings.current()
        program.counts_from = dt.date(2026, 11, 1)
        program.save()
        member = MemberFactory(external_id="M1")
        for occurred_at, count in ((dt.datetime(2026, 10, 31, 23, 59, 59), 5),  # before the first day: not counted
                                   (dt.datetime(2026, 11, 1, 0, 0), 1), (dt.datetime(2026, 11, 12, 18, 0), 1)):
            EngagementEvent.objects.create(member=member, kind="invite", occurred_at=occurred_at.replace(tzinfo=SHANGHAI), count=count)
        EngagementEvent.objects.create(member=member, kind="share", occurred_at=NOW, count=9)
        invite_rewards_grant()
    return member


def test_the_invite_page_shows_friends_rewards_and_what_the_next_friend_earns(call, admin_client, inviter):
    with time_machine.travel(NOW, tick=False):
        answer = call("GET", "/members/M1/invites")
        assert answer.status_code == 200
        progress = answer.json()
        [reward] = progress.pop("rewards")
        assert progress == {
            "external_id": "M1", "active": True, "offer": "邀1位好友得¥5，邀3位好友得¥20", "counts_from": "2026-11-01",
            "friends": 2, "next": {"friends": 3, "friends_missing": 1, "value": "20.00"},
        }
        coupon = Coupon.objects.get(member=inviter)
        assert (reward["friends"], reward["value"], reward["given_at"]) == (1, "5.00", "2026-11-20T10:00:00+08:00")
        assert reward["coupon"] == {"code": coupon.code, "terms": "¥5无门槛券", "valid_from": "2026-11-20T10:00:00+08:00",
                                    "valid_until": "2026-12-04T23:59:59+08:00"}

        # The staff on the phone with him read the same on his page.
        page = html.unescape(admin_client.get(reverse("admin:crm_member_change", args=[inviter.pk])).content.decode())
        assert '<p data-testid="invites">2 friends invited since Nov. 1, 2026; the next reward, ¥20, comes at 3 friends (1 to go).</p>' in page

        # Switched off: nothing more is promised, what was given stays.
        program = InviteSettings.current()
        program.active = False
        program.save()
        progress = call("GET", "/members/M1/invites").json()
        assert (progress["active"], progress["offer"], progress["next"], len(progress["rewards"])) == (False, "", None, 1)


def test_an_unknown_or_erased_member_has_no_invite_page(call, inviter):
    inviter.erased_at = NOW
    inviter.save()
    assert call("GET", "/members/M1/invites").status_code == 404
    assert call("GET", "/members/NOBODY/invites").status_code == 404
