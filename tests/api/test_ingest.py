"""Members, orders (with their lines) and events in over HTTP, through the file
import's engine: the same checks, the same upsert, all or nothing per batch
with every bad item named, or the valid ones only."""

import datetime as dt
from decimal import Decimal

import pytest

from crm.models import EngagementEvent, Member, Order, OrderLine, OrderStatus
from segments.models import MemberMetrics

pytestmark = pytest.mark.django_db


def members(*ids, **fields):
    return {"items": [{"external_id": external_id, **fields} for external_id in ids]}


def test_members_are_created_then_updated_then_unchanged(call):
    body = members("M1", "M2", name="张三", mobile="+86 138-0013-8000", consent_sms=True, tags=["宝妈", "团长推荐"])
    answer = call("POST", "/members", body)
    assert answer.status_code == 200, answer.content
    assert answer.json() | {"errors": []} == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 0, "errors": []}
    member = Member.objects.get(external_id="M1")
    assert member.mobile == "13800138000" and member.name == "张三"
    assert sorted(member.tags.values_list("name", flat=True)) == ["团长推荐", "宝妈"]
    assert call("POST", "/members", body).json()["unchanged"] == 2
    # A field left out stays as it was; one sent changes.
    again = call("POST", "/members", members("M1", community="阳光花园"))
    assert again.json()["updated"] == 1
    member.refresh_from_db()
    assert member.name == "张三" and member.community.name == "阳光花园"


def test_a_member_turns_personalised_recommendation_off_and_on_from_the_shop(call):
    call("POST", "/members", members("M1", name="张三"))
    assert call("POST", "/members", members("M1", personalised=False)).status_code == 200
    member = Member.objects.get(external_id="M1")
    assert member.personalisation_opt_out and member.personalisation_opt_out_at is not None
    call("POST", "/members", members("M1", name="张三丰"))  # left out: as it was
    member.refresh_from_db()
    assert member.personalisation_opt_out and member.name == "张三丰"
    call("POST", "/members", members("M1", personalised=True))
    member.refresh_from_db()
    assert not member.personalisation_opt_out
    refused = call("POST", "/members", members("M1", personalised="no"))
    assert refused.status_code == 422 and not Member.objects.get(external_id="M1").personalisation_opt_out


def test_the_shop_names_a_communitys_group_leader_and_an_unknown_one_is_refused_by_field(call):
    from crm.models import Community
    from tests.crm.factories import GroupLeaderFactory

    leader = GroupLeaderFactory(display_name="王团长", mobile="13900001111")
    assert call("POST", "/members", members("M1", community="幸福里一群", leader="13900001111")).status_code == 200
    assert Community.objects.get(name="幸福里一群").leader_id == leader.pk
    refused = call("POST", "/members", members("M2", community="阳光二群", leader="赵团长"))
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "leader"
    assert not Member.objects.filter(external_id="M2").exists()


def test_orders_with_lines_and_iso_times_with_an_offset(call):
    call("POST", "/members", members("M1"))
    answer = call("POST", "/orders", {"items": [
        {"order_no": "N1", "member_external_id": "M1", "ordered_at": "2026-12-01T02:30:00Z", "amount": "120.50",
         "lines": [{"sku": "SKU1", "product_name": "草莓", "category": "生鲜", "quantity": 2, "unit_price": 60.25, "is_promo": True}]},
        {"order_no": "N2", "member_external_id": "M1", "ordered_at": "2026-12-02 09:00:00", "amount": 30},
    ]})
    assert answer.status_code == 200, answer.content
    assert answer.json()["created"] == 2 and answer.json()["lines"] == {"created": 1, "updated": 0, "unchanged": 0}
    order = Order.objects.get(order_no="N1")
    assert order.amount == Decimal("120.50")
    assert order.ordered_at == dt.datetime(2026, 12, 1, 2, 30, tzinfo=dt.timezone.utc)  # 10:30 in Beijing
    line = OrderLine.objects.get(order=order)
    assert (line.product.sku, line.product.category.name, line.quantity, line.is_promo) == ("SKU1", "生鲜", 2, True)


def test_a_bad_batch_names_every_bad_item_and_writes_nothing(call):
    call("POST", "/members", members("M1"))
    answer = call("POST", "/orders", {"items": [
        {"order_no": "N1", "member_external_id": "M1", "ordered_at": "2026-12-01 10:00:00", "amount": "10"},
        {"order_no": "N2", "member_external_id": "NOBODY", "ordered_at": "2026-12-01 10:00:00", "amount": "10"},
        {"order_no": "N3", "member_external_id": "M1", "ordered_at": "2026-02-30 10:00:00", "amount": "10"},
        {"order_no": "N4", "member_external_id": "M1", "ordered_at": "2026-12-01 10:00:00", "amount": "-5"},
        {"order_no": "N5", "member_external_id": "M1", "ordered_at": "2026-12-01 10:00:00", "amount": "5",
         "lines": [{"sku": "A", "quantity": 0, "unit_price": "1"}]},
        {"order_no": "N1", "member_external_id": "M1", "ordered_at": "2026-12-01 10:00:00", "amount": "10"},
    ]})
    assert answer.status_code == 422
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422 and "nothing was written" in problem["detail"]
    named = {(error["index"], error["field"]) for error in problem["errors"]}
    assert named == {(1, "member_external_id"), (2, "ordered_at"), (3, "amount"), (4, "lines[0].quantity"), (5, "order_no")}
    assert not Order.objects.exists() and not OrderLine.objects.exists()


def test_valid_only_takes_the_good_items_and_names_the_rest(call):
    call("POST", "/members", members("M1"))
    answer = call("POST", "/orders?valid_only=1", {"items": [
        {"order_no": "N1", "member_external_id": "M1", "ordered_at": "2026-12-01 10:00:00", "amount": "10"},
        {"order_no": "N2", "member_external_id": "NOBODY", "ordered_at": "2026-12-01 10:00:00", "amount": "10"},
    ]})
    assert answer.status_code == 200
    assert (answer.json()["created"], answer.json()["rejected"]) == (1, 1)
    assert answer.json()["errors"][0]["index"] == 1
    assert list(Order.objects.values_list("order_no", flat=True)) == ["N1"]


def test_a_refund_of_a_known_order_needs_only_its_number_and_status(call, django_capture_on_commit_callbacks):
    call("POST", "/members", members("M1"))
    order = {"order_no": "N1", "member_external_id": "M1", "ordered_at": "2026-12-01 10:00:00", "amount": "1200"}
    with django_capture_on_commit_callbacks(execute=True):
        call("POST", "/orders", {"items": [order]})
    assert MemberMetrics.objects.get(member__external_id="M1").spend_365 == Decimal("1200")
    with django_capture_on_commit_callbacks(execute=True):
        answer = call("POST", "/orders", {"items": [{"order_no": "N1", "status": "refunded"}]})
    assert answer.json()["updated"] == 1
    order_row = Order.objects.get(order_no="N1")
    assert order_row.status == OrderStatus.REFUNDED and order_row.amount == Decimal("1200")
    assert MemberMetrics.objects.get(member__external_id="M1").spend_365 == 0
    unknown = call("POST", "/orders", {"items": [{"order_no": "N9", "status": "refunded"}]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "member_external_id"


def test_events_in(call):
    call("POST", "/members", members("M1"))
    answer = call("POST", "/events", {"items": [{"member_external_id": "M1", "kind": "ugc", "occurred_at": "2026-12-01 10:00:00"}]})
    assert answer.json()["created"] == 1
    assert EngagementEvent.objects.get().kind == "ugc"


def test_a_friend_invited_through_the_api_is_an_open_coupon_in_the_standing(call, django_capture_on_commit_callbacks):
    from campaigns.invites.models import InviteSettings

    program = InviteSettings.current()
    program.counts_from = dt.date(2026, 1, 1)
    program.save()
    call("POST", "/members", members("M1"))
    invite = {"member_external_id": "M1", "kind": "invite", "occurred_at": "2026-12-01 10:00:00"}
    with django_capture_on_commit_callbacks(execute=True):
        call("POST", "/events", {"items": [invite]})
        call("POST", "/events", {"items": [invite]}, idempotency_key="retry")  # the shop's retry: nothing twice
    coupons = call("GET", "/members/M1/standing").json()["coupons"]
    assert [coupon["terms"] for coupon in coupons] == ["¥5无门槛券"]


def test_an_idempotency_key_replays_the_first_answer(call):
    body = members("M1")
    first = call("POST", "/members", body, idempotency_key="batch-1")
    Member.objects.all().delete()
    again = call("POST", "/members", body, idempotency_key="batch-1")
    assert again.json() == first.json() and first.json()["created"] == 1
    assert not Member.objects.exists()  # replayed, not done again
    other = call("POST", "/members", members("M2"), idempotency_key="batch-1")
    assert other.status_code == 422 and "another request" in other.json()["detail"]


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"items": [{"external_id": "M1", "shoe_size": 42}]}, 422, "shoe_size"),
        ({"items": [{"external_id": "M1", "consent_sms": "yes"}]}, 422, "consent_sms"),
        ({"items": [{"external_id": 7}]}, 422, "external_id"),
        ({"items": []}, 422, "items"),
        ({"items": [{"external_id": f"M{i}"} for i in range(1001)]}, 422, "items"),
        ({"rows": []}, 422, None),
    ],
)
def test_wrong_shapes_are_refused_with_the_field_and_write_nothing(call, body, status, field):
    answer = call("POST", "/members", body)
    assert answer.status_code == status and answer["Content-Type"] == "application/problem+json"
    if field:
        assert any(field in error["field"] for error in answer.json()["errors"]), answer.json()
    assert not Member.objects.exists()


def test_malformed_json_and_a_body_over_the_limit(call, settings):
    assert call("POST", "/members", raw=b'{"items": [').status_code == 400
    settings.API_MAX_BODY_BYTES = 100
    answer = call("POST", "/members", members(*(f"M{i}" for i in range(20))))
    assert answer.status_code == 413 and answer.json()["title"] == "Content Too Large"
    assert not Member.objects.exists()


def test_a_nul_character_is_refused_with_its_field_not_a_server_error(call):
    answer = call("POST", "/members", {"items": [{"external_id": "M1", "name": "张\u0000三"}]})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "name"
    assert call("GET", "/members/M\u00001/standing").status_code == 422
    assert not Member.objects.exists()


def test_the_engine_refuses_a_nul_in_any_cell_whatever_sends_it():
    from api.ingest import ingest

    result = ingest("members", [{"external_id": "M1", "community": "阳光\u0000花园"}], valid_only=False, source="test")
    assert not result.written and [(error.index, error.field) for error in result.errors] == [(0, "community")]
    assert "NUL" in result.errors[0].reason and not Member.objects.exists()
