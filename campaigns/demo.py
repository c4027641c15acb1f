"""Demo templates and a draft campaign, so that a newcomer has something to preview at once."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from campaigns.models import Campaign, CouponKind, MessageTemplate, Variant
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


@transaction.atomic
def seed_demo_campaigns() -> Campaign | None:
    """Idempotent: two templates with an A/B draft campaign for the B tier, and a reactivation draft."""
    templates = {}
    for name, body in TEMPLATES:
        templates[name], _created = MessageTemplate.objects.get_or_create(name=name, defaults={"body": body})
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
