"""DOMAIN.md section 8's defaults as rows staff edit: the rights of S, A, B and C,
the earning rules (in force since 1970, so that a first settle awards the whole
history), a multiplier of 1.0 for every tier, the points settings, and the
beat entries of the nightly settle and the expiry."""

import datetime as dt
from decimal import Decimal

from django.db import migrations

RIGHTS = [
    # tier, name, kind, description, per month, points, coupon value, coupon threshold
    ("S", "新品优先购买权", "access", "限量新品先于其他会员开放购买", None, None, None, None),
    ("S", "线下品鉴会邀请", "access", "私享品鉴会，每月一场", 1, None, None, None),
    ("S", "专属顾问1v1", "service", "一对一专属顾问服务", None, None, None, None),
    ("A", "组合套装9折", "discount", "指定组合套装享9折", None, None, None, None),
    ("A", "加购指定商品85折", "discount", "加购指定商品享85折", None, None, None, None),
    ("A", "优先选品", "access", "新品选品投票与优先试用", None, 800, None, None),
    ("B", "秒杀券", "coupon", "每月两张秒杀专享券", 2, None, Decimal("5"), None),
    ("B", "满减券", "coupon", "满99减15", 1, None, Decimal("15"), Decimal("99")),
    ("C", "新人礼包（9.9元三件小样）", "service", "新会员9.9元领三件小样", None, None, None, None),
    ("C", "免运费", "service", "一次免运费", None, 200, None, None),
    ("C", "5元无门槛券", "coupon", "积分兑换5元无门槛券，14天有效", None, 500, Decimal("5"), None),
]

RULES = [("register", 10), ("first_order", 50), ("repeat_order", 100), ("share", 30), ("ugc", 200), ("order_points", 1)]

BEAT = [
    ("每晚结算成长值与积分 (loyalty: nightly settle)", "loyalty.tasks.ledgers_settle_nightly_task", ("40", "3")),
    ("积分到期处理 (loyalty: points expiry)", "loyalty.tasks.points_expire_task", ("10", "0")),
]


def create(apps, schema_editor):
    Tier = apps.get_model("segments", "Tier")
    Right = apps.get_model("loyalty", "Right")
    EarningRule = apps.get_model("loyalty", "EarningRule")
    TierPoints = apps.get_model("loyalty", "TierPoints")
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    for position, (code, name, kind, description, quota, points, value, threshold) in enumerate(RIGHTS):
        if code in tiers:
            Right.objects.get_or_create(
                tier=tiers[code], name=name,
                defaults={"kind": kind, "description": description, "monthly_quota": quota, "points_cost": points,
                          "coupon_value": value, "coupon_threshold": threshold, "position": position},
            )
    for code, amount in RULES:
        EarningRule.objects.get_or_create(code=code, effective_from=dt.date(1970, 1, 1), defaults={"amount": amount})
    for tier in tiers.values():
        TierPoints.objects.get_or_create(tier=tier)
    apps.get_model("loyalty", "LoyaltySettings").objects.get_or_create(pk=1)
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, (minute, hour) in BEAT:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": schedule})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=[task for _, task, _ in BEAT]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0001_initial"),
        ("segments", "0002_defaults"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove)]
