"""Templates reach the member's rights, what the next tier adds, and his points."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.rendering import contexts_for
from campaigns.templating import compile_template, render, template_errors
from loyalty import services
from segments.services import tiers_recompute
from tests.crm.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_rights_next_tier_rights_and_points_are_template_variables():
    source = "{{ salutation }}，您已享{{ rights }}；升级{{ next_tier }}再享{{ next_tier_rights }}。可用积分{{ points }}"
    assert template_errors(source) == []
    member = MemberFactory(name="王芳", gender="F", age_band="45-54")
    for days_ago in (5, 20, 40):  # 3 orders, ¥1,500: silver (B)
        OrderFactory(member=member, ordered_at=timezone.now() - dt.timedelta(days=days_ago), amount=Decimal("500"))
    tiers_recompute()
    services.ledgers_settle(member_ids=[member.pk])
    text = render(compile_template(source), contexts_for([member.pk])[member.pk])
    assert text == (
        "王姐，您已享秒杀券、满减券、新人礼包（9.9元三件小样）、免运费、5元无门槛券；"  # his tier's own first
        "升级黄金再享组合套装9折、加购指定商品85折、优先选品。可用积分1000"
    )
