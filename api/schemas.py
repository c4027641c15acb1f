"""The API's bodies, as pydantic models: they check the types and write the OpenAPI schema.

Field names are the file import's canonical headings (README). Values the
engine checks further (a date, an amount's decimals, a mobile) travel as
text and come back, when bad, as the same per-field reasons a file gets."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from ninja import Schema
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from pydantic import StrictStr as _StrictStr


def _no_nul(value: str) -> str:
    # PostgreSQL's text cannot hold a NUL character: refused here, before any lookup sees it.
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


StrictStr = Annotated[_StrictStr, AfterValidator(_no_nul)]
PathText = Annotated[str, AfterValidator(_no_nul)]  # a member ID or a coupon code in the path

from api.ingest import MAX_ITEMS

Text = Annotated[StrictStr, Field(max_length=300)]
Key = Annotated[StrictStr, Field(min_length=1, max_length=64)]
Time = Annotated[StrictStr, Field(max_length=40, description='"YYYY-MM-DD HH:MM:SS" Beijing time, or ISO 8601 with an offset')]
Amount = Annotated[
    Union[Annotated[StrictStr, Field(max_length=20)], StrictInt, StrictFloat],
    Field(description='yuan: a decimal string ("12.50") or a number, at most two decimals'),
]


class Closed(BaseModel):
    """What the shop sends: plain pydantic (ninja's Schema reads ORM objects through a
    validator run per object; on a batch of 1,000 orders with their lines that was
    half the time of the call), unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class MemberItem(Closed):
    external_id: Key
    name: Optional[Text] = None
    mobile: Optional[Annotated[StrictStr, Field(max_length=30)]] = None
    gender: Optional[Annotated[StrictStr, Field(max_length=10)]] = None
    birthday: Optional[Annotated[StrictStr, Field(max_length=20, description="YYYY-MM-DD")]] = None
    age_band: Optional[Annotated[StrictStr, Field(max_length=10)]] = None
    registered_at: Optional[Time] = None
    community: Optional[Text] = None
    leader: Optional[Text] = Field(None, description="the community's group leader, by display name or mobile; he must be known to the CRM")
    tags: Optional[Annotated[list[Annotated[StrictStr, Field(max_length=60)]], Field(max_length=50)]] = None
    consent_sms: Optional[StrictBool] = None
    consent_wecom: Optional[StrictBool] = None
    consent_email: Optional[StrictBool] = None
    consent_push: Optional[StrictBool] = None
    lives_alone: Optional[StrictBool] = None
    has_elderly: Optional[StrictBool] = None
    has_children: Optional[StrictBool] = None
    works_late: Optional[StrictBool] = None
    source_channel: Optional[Text] = None
    wechat_unionid: Optional[Text] = None
    email: Optional[Text] = None
    personalised: Optional[StrictBool] = Field(None, description="personalised recommendation on or off (PIPL art. 24); left out: as it is")


class LineItem(Closed):
    sku: Key
    product_name: Optional[Text] = None
    category: Optional[Text] = None
    quantity: Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
    unit_price: Amount
    is_promo: Optional[StrictBool] = None


class OrderItem(Closed):
    order_no: Key
    member_external_id: Optional[Key] = Field(None, description="required unless the order is known (a status change)")
    ordered_at: Optional[Time] = None
    amount: Optional[Amount] = None
    status: Optional[Annotated[StrictStr, Field(max_length=20, description="paid or refunded")]] = None
    channel: Optional[Text] = None
    coupon_code: Optional[Annotated[StrictStr, Field(max_length=64)]] = None
    lines: Optional[Annotated[list[LineItem], Field(max_length=200)]] = None


class EventItem(Closed):
    member_external_id: Key
    kind: Annotated[StrictStr, Field(max_length=30, description="share, invite, group_message, organised_group_buy or ugc")]
    occurred_at: Time
    count: Optional[Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]] = None


class MemberBatch(Closed):
    items: Annotated[list[MemberItem], Field(min_length=1, max_length=MAX_ITEMS)]


class OrderBatch(Closed):
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ITEMS)]


class EventBatch(Closed):
    items: Annotated[list[EventItem], Field(min_length=1, max_length=MAX_ITEMS)]


class ItemProblem(Schema):
    index: int
    field: str
    reason: str


class Problem(Schema):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: Optional[list[ItemProblem]] = None


class Written(Schema):
    created: int
    updated: int
    unchanged: int


class IngestAnswer(Written):
    rejected: int = Field(description="items refused (only with valid_only=1; otherwise the answer is a 422)")
    lines: Optional[Written] = None
    errors: list[ItemProblem]


class TierOut(Schema):
    code: str
    name: str


class NextTierOut(TierOut):
    spend_missing: str = Field(description="yuan within the 365-day window")
    orders_missing: int
    needs_recent_order: bool


class RightOut(Schema):
    id: int
    name: str
    kind: str
    description: str
    points_cost: Optional[int]
    tier: str


class PointsOut(Schema):
    available: int
    pending: int
    expiring_30d: int


class CouponOut(Schema):
    code: str
    terms: str
    valid_from: str
    valid_until: str


class OfferOut(Schema):
    title: str
    image_url: str
    products: list[str]
    valid_until: Optional[str]


class StandingOut(Schema):
    external_id: str
    tier: Optional[TierOut]
    next_tier: Optional[NextTierOut]
    spend_365: str
    orders_365: int
    rights: list[RightOut]
    next_tier_rights: list[RightOut]
    growth_value: int
    points: PointsOut
    coupons: list[CouponOut]
    offers: list[OfferOut]


class InviteRewardOut(Schema):
    friends: int = Field(description="the milestone: friends invited")
    value: str = Field(description="yuan off, no minimum spend")
    given_at: str
    coupon: Optional[CouponOut]


class InviteNextOut(Schema):
    friends: int = Field(description="the next milestone")
    friends_missing: int
    value: str


class InvitesOut(Schema):
    external_id: str
    active: bool = Field(description="false: the programme is off and invites earn nothing for now")
    offer: str = Field(description="what friends invited earn, as messages say it (邀1位好友得¥5，邀3位好友得¥20); empty while off")
    counts_from: str = Field(description="invites from this day (Beijing time) count")
    friends: int = Field(description="friends invited since counts_from")
    rewards: list[InviteRewardOut]
    next: Optional[InviteNextOut]


class BasketLine(Closed):
    sku: Key
    category: Optional[Text] = Field(None, description="the line's category; when left out, the product's category in the CRM")
    quantity: Annotated[StrictInt, Field(ge=1, le=100000)]
    unit_price: Amount


class CouponCheck(Closed):
    member_external_id: Key
    lines: Annotated[list[BasketLine], Field(min_length=1, max_length=500)]


class CouponRedeem(Closed):
    member_external_id: Key
    order_no: Key
    lines: Optional[Annotated[list[BasketLine], Field(min_length=1, max_length=500)]] = None


class CouponAnswer(Schema):
    code: str
    valid: bool
    reason: Optional[Literal["not_found", "other_member", "used", "not_yet_valid", "expired", "below_minimum", "wrong_category"]]
    message: str
    discount: str = Field(description="yuan off this basket (0 when not valid)")
    terms: str


class RedemptionIn(Closed):
    right_id: StrictInt
    key: Optional[Key] = Field(None, description="idempotency key; or the Idempotency-Key header")


class RedemptionOut(Schema):
    redemption_id: int
    right: str
    points: int
    points_available: int
    coupon: Optional[CouponOut]
