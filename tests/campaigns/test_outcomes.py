"""After the send: unsubscribe replies, coupons redeemed by orders, and the
report checked against a count by hand."""

import datetime as dt
import json
import math
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from campaigns import audience, sending, services
from campaigns.backends import sign
from campaigns.models import Coupon, CouponKind, Delivery, DeliveryStatus, InboundReply, SendingPolicy, SkipReason
from campaigns.reports import campaign_report, two_proportion_test
from crm.models import Consent, ConsentEvent, Order
from segments.services import tiers_recompute
from tests.campaigns.conftest import NOW, campaign_for, member_with, statuses
from tests.crm.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db
SECRET = "gateway-secret"


def post_replies(client, replies, secret=SECRET):
    body = json.dumps({"replies": replies}).encode()
    stamp = str(int(dt.datetime.now().timestamp()))
    return client.post(
        reverse("sms_replies"), data=body, content_type="application/json",
        headers={"X-Timestamp": stamp, "X-Signature": sign(secret, stamp, body)},
    )


@override_settings(GATEWAY_SECRET=SECRET)
def test_an_r_reply_stops_the_next_sms(client, frozen, outbox):
    member = member_with(True)
    tiers_recompute(as_of=NOW.date())
    queued = campaign_for(name="queued")
    audience.deliveries_create(queued, now=NOW + dt.timedelta(hours=2), policy=SendingPolicy.current())
    response = post_replies(client, [{"mobile": member.mobile, "text": " r "}])
    assert response.json() == {"received": 1, "unsubscribed": 1}
    assert not Consent.objects.get(member=member, channel="sms").granted
    assert ConsentEvent.objects.filter(member=member, granted=False, source__contains="SMS reply").exists()
    assert statuses(queued)[member.pk] == ("skipped", SkipReason.NO_CONSENT)  # the message already queued
    later = campaign_for(name="later")
    assert audience.funnel(later)["to_send"] == 0  # and every later one


@override_settings(GATEWAY_SECRET=SECRET)
def test_replies_need_a_valid_signature_and_ordinary_text_changes_nothing(client, frozen):
    member = member_with(True)
    assert post_replies(client, [{"mobile": member.mobile, "text": "R"}], secret="wrong").status_code == 403
    assert post_replies(client, [{"mobile": member.mobile, "text": "鸡蛋还有吗"}]).json()["unsubscribed"] == 0
    assert Consent.objects.get(member=member, channel="sms").granted
    assert InboundReply.objects.count() == 1


def test_a_file_of_replies_unsubscribes_td_and_退订(tmp_path, frozen):
    first, second, third = member_with(True), member_with(True), member_with(True)
    path = tmp_path / "replies.csv"
    fourth = member_with(True)
    path.write_text(
        f"mobile,text,received_at\n{first.mobile},TD,2026-11-20 09:00\n{second.mobile},退订,\n{third.mobile},好的,\n"
        f"{fourth.mobile},ｔｄ ,\n",  # full-width, as some phones type it
        encoding="utf-8",
    )
    out = StringIO()
    call_command("sms_replies_import", str(path), stdout=out)
    assert "4 replies read, 3 unsubscribed" in out.getvalue()
    granted = dict(Consent.objects.filter(channel="sms").values_list("member_id", "granted"))
    assert granted == {first.pk: False, second.pk: False, third.pk: True, fourth.pk: False}


def test_coupons_are_issued_once_and_redeemed_once_within_validity(frozen, outbox, django_capture_on_commit_callbacks):
    member = member_with(True)
    tiers_recompute(as_of=NOW.date())
    campaign = campaign_for(coupon_kind=CouponKind.SPEND_SAVE, coupon_value=Decimal("15"), coupon_threshold=Decimal("59"), coupon_days=7,
                            body="{{ salutation }}，送您{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效")
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    coupon = Coupon.objects.get(member=member)
    assert outbox()[0]["text"] == f"张女士，送您满59减15券，券码{coupon.code}，11月27日前有效。拒收请回复R"
    other = MemberFactory()
    with django_capture_on_commit_callbacks(execute=True):
        OrderFactory(member=other, coupon_code=coupon.code, ordered_at=NOW + dt.timedelta(days=1))  # someone else's code
        first = OrderFactory(member=member, coupon_code=coupon.code, ordered_at=NOW + dt.timedelta(days=2))
        OrderFactory(member=member, coupon_code=coupon.code, ordered_at=NOW + dt.timedelta(days=3))  # twice
    coupon.refresh_from_db()
    assert coupon.order_id == first.pk
    assert services.coupons_redeem() == 0
    # The report names what the redeemed coupons' orders were worth, as money, on every database.
    Order.objects.filter(pk=first.pk).update(amount=Decimal("66.10"))
    assert services.coupon_totals(campaign) == {"issued": 1, "redeemed": 1, "redeemed_revenue": Decimal("66.10")}
    assert str(campaign_report(campaign)["coupons"]["redeemed_revenue"]) == "66.10"


def test_an_order_import_redeems_its_members_coupons_and_the_nightly_sweep_the_rest(frozen, tmp_path, django_capture_on_commit_callbacks):
    from django_celery_beat.models import PeriodicTask

    from campaigns.tasks import coupons_redeem_task

    buyer, other = MemberFactory(external_id="M-BUYER"), MemberFactory()
    valid = {"kind": "amount", "value": 5, "valid_from": NOW, "valid_until": NOW + dt.timedelta(days=7)}
    mine, theirs = Coupon.objects.create(code="QBUYER2345", member=buyer, **valid), Coupon.objects.create(code="QOTHER2345", member=other, **valid)
    # Another member's order whose own task was lost (written without signals).
    Order.objects.bulk_create([Order(order_no="SO-LOST", member=other, ordered_at=NOW + dt.timedelta(hours=1), amount=30, coupon_code=theirs.code)])
    path = tmp_path / "orders.csv"
    path.write_text(f"order_no,member_external_id,ordered_at,amount,coupon_code\nSO-1,M-BUYER,2026-11-20 12:00,88,{mine.code}\n", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_orders", str(path), stdout=StringIO(), stderr=StringIO())
    mine.refresh_from_db(), theirs.refresh_from_db()
    assert mine.order.order_no == "SO-1" and theirs.order is None  # the import matched its own members' orders only
    assert PeriodicTask.objects.get(task="campaigns.tasks.coupons_redeem_task").enabled
    coupons_redeem_task()  # the nightly sweep
    theirs.refresh_from_db()
    assert theirs.order.order_no == "SO-LOST"


def test_coupon_codes_are_unambiguous_and_a_code_drawn_twice_is_drawn_again(frozen, outbox, monkeypatch, django_capture_on_commit_callbacks):
    """Codes are Q and nine letters without 0/O/1/I; when a drawn code already
    exists, that member's coupon gets a fresh one, and nobody's message goes without."""
    codes = sending._new_codes(2000)
    assert len(set(codes)) == 2000
    assert all(len(code) == 10 and code[0] == "Q" and set(code[1:]) <= set(sending.CODE_ALPHABET) for code in codes)
    assert set("".join(code[1:] for code in codes)) == set(sending.CODE_ALPHABET)  # every letter turns up
    first, _second = member_with(True), member_with(True)
    tiers_recompute(as_of=NOW.date())
    taken = Coupon.objects.create(code="QTAKEN2345", member=first, kind="amount", value=5, valid_from=NOW, valid_until=NOW + dt.timedelta(days=3))
    draws = iter([["QTAKEN2345", "QFRESH2345"]])
    monkeypatch.setattr(sending, "_new_codes", lambda count: next(draws, None) or ["QAGAIN2345"] * count)
    campaign = campaign_for(coupon_kind=CouponKind.AMOUNT, coupon_value=Decimal("10"), coupon_days=7, body="{{ name }}：券码{{ coupon_code }}")
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    issued = dict(Coupon.objects.filter(campaign=campaign).values_list("member_id", "code"))
    assert sorted(issued.values()) == ["QAGAIN2345", "QFRESH2345"]
    assert sorted(line["text"].split("券码")[1][:10] for line in outbox()) == sorted(issued.values())
    assert Coupon.objects.get(pk=taken.pk).campaign_id is None  # the existing coupon is left alone


def test_an_expired_coupon_is_not_redeemed(frozen, django_capture_on_commit_callbacks):
    member = member_with(True)
    coupon = Coupon.objects.create(code="QEXPIRED1", member=member, kind="amount", value=5, valid_from=NOW - dt.timedelta(days=20), valid_until=NOW - dt.timedelta(days=6))
    with django_capture_on_commit_callbacks(execute=True):
        OrderFactory(member=member, coupon_code=coupon.code, ordered_at=NOW)
    coupon.refresh_from_db()
    assert coupon.redeemed_at is None


def test_the_report_equals_a_count_by_hand(frozen):
    """Variant A: 4 sent, 2 convert (one with two orders); control: 2 held back, 1 converts.
    Not counted: a refunded order, an order after the window, an order after another campaign's message."""
    campaign = campaign_for(conversion_days=7)
    variant = campaign.variants.get()
    interloper = campaign_for(name="other")
    members = [MemberFactory() for _ in range(8)]

    def delivery(member, status, **fields):
        return Delivery.objects.create(campaign=campaign, member=member, variant=variant, channel="sms", status=status, due_at=NOW, **fields)

    for member in members[:4]:
        delivery(member, DeliveryStatus.SENT, sent_at=NOW)
    delivery(members[4], DeliveryStatus.CONTROL)
    delivery(members[5], DeliveryStatus.CONTROL)
    delivery(members[6], DeliveryStatus.SKIPPED, skip_reason=SkipReason.NO_CONSENT)
    delivery(members[7], DeliveryStatus.FAILED, error="bad number")
    day = dt.timedelta(days=1)
    OrderFactory(member=members[0], amount=Decimal("100"), ordered_at=NOW + day)
    OrderFactory(member=members[0], amount=Decimal("50"), ordered_at=NOW + 2 * day)
    OrderFactory(member=members[1], amount=Decimal("80"), ordered_at=NOW + 6 * day)
    OrderFactory(member=members[2], amount=Decimal("999"), ordered_at=NOW + 2 * day, status="refunded")
    OrderFactory(member=members[2], amount=Decimal("999"), ordered_at=NOW + 8 * day)  # after the window
    OrderFactory(member=members[2], amount=Decimal("999"), ordered_at=NOW - day)  # before the message
    Delivery.objects.create(campaign=interloper, member=members[3], channel="sms", status=DeliveryStatus.SENT, due_at=NOW, sent_at=NOW + day)
    OrderFactory(member=members[3], amount=Decimal("999"), ordered_at=NOW + 2 * day)  # the other campaign's
    OrderFactory(member=members[4], amount=Decimal("60"), ordered_at=NOW + 3 * day)

    report = campaign_report(campaign)
    a, control = report["rows"]
    assert (a["members"], a["sent"], a["failed"], a["skipped"]["no_consent"]) == (6, 4, 1, 1)
    assert (a["converted"], a["orders"], a["revenue"], a["average_order_value"]) == (2, 3, Decimal("230.00"), Decimal("76.67"))
    assert a["conversion_rate"] == 0.5
    assert (control["held_back"], control["converted"], control["revenue"], control["conversion_rate"]) == (2, 1, Decimal("60.00"), 0.5)
    assert a["uplift"] == 0.0
    assert a["p_value"] == pytest.approx(1.0)

    out = StringIO()
    call_command("campaign_report", campaign.name, "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["rows"][0]["revenue"] == "230.00" and printed["totals"]["converted"] == 2


def test_the_conversion_window_counts_calendar_days_from_the_sends_day(frozen):
    """Sent at 10:00 with a 7-day window: an order at 20:00 on the 7th day after converts, one
    just after that day's midnight does not."""
    campaign = campaign_for(conversion_days=7)
    variant = campaign.variants.get()
    inside, outside = MemberFactory(), MemberFactory()
    for member in (inside, outside):
        Delivery.objects.create(campaign=campaign, member=member, variant=variant, channel="sms", status=DeliveryStatus.SENT, due_at=NOW, sent_at=NOW)
    seventh = NOW.date() + dt.timedelta(days=7)
    OrderFactory(member=inside, amount=Decimal("88"), ordered_at=dt.datetime.combine(seventh, dt.time(20), tzinfo=NOW.tzinfo))
    OrderFactory(member=outside, amount=Decimal("99"), ordered_at=dt.datetime.combine(seventh, dt.time(23, 59), tzinfo=NOW.tzinfo) + dt.timedelta(minutes=2))

    row = campaign_report(campaign)["rows"][0]
    assert (row["converted"], row["revenue"]) == (1, Decimal("88.00"))


def test_the_significance_test_matches_the_textbook():
    z, p = two_proportion_test(120, 1000, 90, 1000)
    pooled = 210 / 2000
    expected_z = (0.12 - 0.09) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert z == pytest.approx(expected_z)
    assert p == pytest.approx(0.0291, abs=1e-3)
    assert two_proportion_test(0, 0, 1, 10) is None
