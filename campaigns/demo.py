"""Demo templates, two draft campaigns to preview, one campaign sent three weeks ago, and points
spent on rights over the last months, friends invited rewarded, so that a newcomer has something to
preview at once, a report with results to read and a points programme that is used."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from campaigns.audience import deliveries_create
from campaigns.invites.models import InviteReward, InviteSettings
from campaigns.invites.services import invite_rewards_grant
from campaigns.models import Campaign, CampaignStatus, Coupon, CouponKind, Delivery, DeliveryStatus, MessageTemplate, SendingPolicy, Variant
from campaigns.rewards import right_redeem
from campaigns.sending import send_batch
from campaigns.services import coupons_redeem
from crm.models import Member, Order, OrderStatus
from loyalty.models import Redemption, Right
from loyalty.services import RedemptionError, ledgers_settle, rights_of
from segments.days import local_midnight
from segments.models import Circle, Tier

TEMPLATES = [
    (
        "补货提醒·升级",
        "{{ salutation }}，您常买的{{ usual_product }}补货啦{% if next_tier %}，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员{% endif %}。"
        "送您{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效",
    ),
    ("补货提醒·团长", "{{ salutation }}，{{ leader }}给您留了{{ usual_product }}，{{ coupon_expiry }}前用券码{{ coupon_code }}立减，{{ community }}见"),
    ("沉睡唤回", "{{ salutation }}，好久不见！{{ community }}为您准备了{{ coupon }}（券码{{ coupon_code }}），{{ coupon_expiry }}前有效"),
]


def _templates() -> dict[str, MessageTemplate]:
    return {name: MessageTemplate.objects.get_or_create(name=name, defaults={"body": body})[0] for name, body in TEMPLATES}


@transaction.atomic
def seed_demo_campaigns() -> Campaign | None:
    """Idempotent: two templates with an A/B draft campaign for the B tier, and a reactivation draft."""
    templates = _templates()
    silver = Tier.objects.filter(code="B").first()
    if silver is None or Campaign.objects.filter(name="白银升级冲刺").exists():
        return None
    campaign = Campaign.objects.create(
        name="白银升级冲刺", control_share=10, coupon_kind=CouponKind.AMOUNT, coupon_value=Decimal("10"), coupon_days=7, conversion_days=7
    )
    campaign.target_tiers.add(silver)
    Variant.objects.create(campaign=campaign, label="A", template=templates["补货提醒·升级"], share=50)
    Variant.objects.create(campaign=campaign, label="B", template=templates["补货提醒·团长"], share=50)
    dormant = Circle.objects.filter(name="沉睡").first()
    if dormant is not None and not Campaign.objects.filter(name="沉睡会员唤回").exists():
        comeback = Campaign.objects.create(
            name="沉睡会员唤回", control_share=20, coupon_kind=CouponKind.SPEND_SAVE, coupon_value=Decimal("15"),
            coupon_threshold=Decimal("59"), coupon_days=14, conversion_days=14,
        )
        comeback.target_circles.add(dormant)
        Variant.objects.create(campaign=comeback, label="A", template=templates["沉睡唤回"], share=100)
    return campaign


HISTORY_NAME = "白银复购提醒（示例：三周前已发送）"
HISTORY_DAYS_AGO = 21
COUPON_USED_SHARE = 0.35  # of the members sent a coupon who ordered while it was valid
REDEEMING_SHARE = 0.25  # of the members with points enough for a right
REDEMPTION_DAYS = 120  # the demo's redemptions fall in the last so many days
REDEMPTION_KEY = "demo-"  # the idempotency keys of the demo's redemptions begin so


@transaction.atomic
def seed_demo_campaign_history(*, now: dt.datetime | None = None, seed: int = 42) -> Campaign | None:
    """Idempotent: an A/B campaign to the B tier with a control group, sent three weeks before now,
    so that its report and the dashboard's campaign figures have results on the first screen.

    It goes through the outbox as any campaign does, with the clock set to that morning and then to
    each later time a message was due (members' usual hours, the quiet hours), through the
    configured backend. What it converted is read by the report from the demo's orders after the
    send, against the control group's; some of its coupons are taken to have been used (_use_some)."""
    now = now or timezone.now()
    silver = Tier.objects.filter(code="B").first()
    if silver is None or Campaign.objects.filter(name=HISTORY_NAME).exists():
        return None
    templates = _templates()
    sent_at = local_midnight(timezone.localdate(now) - dt.timedelta(days=HISTORY_DAYS_AGO)) + dt.timedelta(hours=10)
    campaign = Campaign.objects.create(
        name=HISTORY_NAME, status=CampaignStatus.SCHEDULED, control_share=10, coupon_kind=CouponKind.AMOUNT, coupon_value=Decimal("5"),
        coupon_days=7, conversion_days=7, send_at=sent_at, created_at=sent_at - dt.timedelta(days=2),
        submitted_at=sent_at - dt.timedelta(days=1), approved_at=sent_at - dt.timedelta(hours=20),
    )
    campaign.target_tiers.add(silver)
    Variant.objects.create(campaign=campaign, label="A", template=templates["补货提醒·升级"], share=50)
    Variant.objects.create(campaign=campaign, label="B", template=templates["补货提醒·团长"], share=50)
    deliveries_create(campaign, now=sent_at, policy=SendingPolicy.current())
    clock = sent_at
    queued = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED)
    for _round in range(100):  # each round a later due time; a message deferred by the quiet hours comes back once
        due = queued.aggregate(due=Min("due_at"))["due"]
        if due is None:
            break
        clock = max(clock, due)
        ids = list(queued.filter(due_at__lte=clock).values_list("id", flat=True))
        for start in range(0, len(ids), 1000):
            send_batch(ids[start : start + 1000], now=clock)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.DONE, last_launched_at=sent_at, finished_at=clock)
    _use_some(Coupon.objects.filter(campaign=campaign), random.Random(seed))  # nosec B311 - demo data, not a secret
    campaign.refresh_from_db()
    return campaign


def _use_some(coupons, chance: random.Random) -> None:
    """The demo's orders carry no coupon codes: of the members given one of these coupons who
    ordered while it was valid, about a third (COUPON_USED_SHARE) are taken to have used it on
    their first such order, which is then redeemed as an imported order's code would be."""
    used = []
    for coupon in coupons.order_by("pk"):
        order = (
            Order.objects.filter(member_id=coupon.member_id, status=OrderStatus.PAID, coupon_code="",
                                 ordered_at__gte=coupon.valid_from, ordered_at__lte=coupon.valid_until)
            .order_by("ordered_at").first()
        )
        if order is not None and chance.random() < COUPON_USED_SHARE:
            Order.objects.filter(pk=order.pk).update(coupon_code=coupon.code)
            used.append(order.pk)
    coupons_redeem(order_ids=used)


def seed_demo_redemptions(*, now: dt.datetime | None = None, seed: int = 42) -> int:
    """Idempotent: about a quarter of the members with points enough for one of their rights spend
    them once or twice at times over the last REDEMPTION_DAYS days, through the same service as a
    redemption in the admin or the API (each checked against the balance of its moment), so that
    the dashboard's redemption figures, the redemption list and the members' ledgers have history
    on the first screen. Some of the coupons so bought are taken to have been used (_use_some).
    Returns how many redemptions it made (0 when the demo's are there already)."""
    now = now or timezone.now()
    if Redemption.objects.filter(key__startswith=REDEMPTION_KEY).exists():
        return 0
    rights = list(Right.objects.filter(active=True, points_cost__isnull=False))
    if not rights:
        return 0
    chance = random.Random(seed)  # nosec B311 - demo data, not a secret
    cheapest = min(right.points_cost for right in rights)
    members = Member.objects.filter(loyalty_balance__points__gte=cheapest, erased_at__isnull=True).order_by("pk")
    made, touched, coupons = 0, set(), []
    for member in members.iterator(chunk_size=2000):
        if chance.random() >= REDEEMING_SHARE:
            continue
        spendable = [right for right in rights_of(member).mine if right.points_cost is not None]
        moments = sorted(now - dt.timedelta(minutes=chance.randrange(REDEMPTION_DAYS * 24 * 60)) for _each in range(chance.choice((1, 1, 2))))
        for n, moment in enumerate(moments):
            if not spendable:
                break
            try:
                redemption, coupon = right_redeem(member=member, right=chance.choice(spendable), key=f"{REDEMPTION_KEY}{member.pk}-{n}", now=moment)
            except RedemptionError:  # too few points at that moment
                continue
            made += 1
            touched.add(member.pk)
            if coupon is not None:
                coupons.append(coupon.pk)
    _use_some(Coupon.objects.filter(pk__in=coupons), chance)
    if touched:
        ledgers_settle(member_ids=sorted(touched), now=now)  # the balances as of now, not of each member's last redemption
    return made


INVITE_DAYS = 60  # the demo's invite programme began so many days ago


def seed_demo_invite_rewards(*, now: dt.datetime | None = None, seed: int = 42) -> int:
    """Idempotent: the invite programme began INVITE_DAYS days ago and has run each evening
    since, so the demo's invites of those days have given their rewards on their days; some of
    those coupons were used (_use_some). Returns how many rewards it gave."""
    now = now or timezone.now()
    program = InviteSettings.current()
    if InviteReward.objects.exists() or not program.active:
        return 0
    program.counts_from = timezone.localdate(now) - dt.timedelta(days=INVITE_DAYS)
    program.save(update_fields=["counts_from"])
    given = 0
    for back in range(INVITE_DAYS, -1, -1):
        evening = local_midnight(timezone.localdate(now) - dt.timedelta(days=back)) + dt.timedelta(hours=20)
        given += invite_rewards_grant(now=min(evening, now))
    _use_some(Coupon.objects.filter(pk__in=InviteReward.objects.values("coupon_id")), random.Random(seed))  # nosec B311 - demo data
    return given
