"""The defaults of DOMAIN.md sections 3 and 4 as rows staff edit: the S/A/B/C
ladder, the five circles, the three lifecycle segments, the automatic tags,
the recompute settings, and the beat entries of the nightly and weekly runs."""

from decimal import Decimal

from django.db import migrations

TIERS = [
    # code, name, rank, catch-all, R <= days, F comparison, F, M comparison, M, playbook
    ("S", "铂金", 40, False, 30, "gt", 12, "gt", Decimal("20000"), "私享品鉴、限量新品优先购、一对一专属服务；礼遇是权益，不是折扣。"),
    ("A", "黄金", 30, False, 60, "gt", 6, "gte", Decimal("5000"), "组合装与阶梯满减，助其升级铂金。"),
    ("B", "白银", 20, False, 90, "gt", 2, "gte", Decimal("1000"), "快闪秒杀、高性价比爆品，提升复购。"),
    ("C", "潜客/新客", 10, True, None, "gt", None, "gte", None, "零风险试用装，一对一陪伴完成首单与第二单。"),
]

CIRCLES = [
    # name, kind, rules, usual share %, playbook
    ("高价值忠诚", "circle", {"spend_365_min": "3000", "orders_365_min": "24", "risk_band": ["low"]}, "15", "专属服务、新品试用、双倍积分、生日礼遇。"),
    ("潜力成长", "circle", {"spend_365_min": "500", "spend_365_max": "5000", "trend": ["rising"]}, "25", "定向券、邀请有礼，培养为社区KOC。"),
    ("价格敏感", "circle", {"spend_365_max": "3000", "orders_365_min": "6", "promo_share_min": "0.5"}, "35", "限时秒杀、拼团特价，引导购买高毛利组合。"),
    ("沉睡", "circle", {"has_ordered": "true", "recency_min": "31"}, "20", "回归礼包（回归送鸡蛋）、个性化召回消息、团长电话回访。"),
    ("影响力节点", "circle", {"v_top_percent": "5"}, "5", "授予“社区达人”称号，参与选品，邀请参加线下活动。"),
    ("注册7天未下单", "lifecycle", {"has_ordered": "false", "registered_days_min": "7"}, None, "首单礼包与一对一引导。"),
    ("低频购买", "lifecycle", {"has_ordered": "true", "monthly_orders_below": "2"}, None, "提高复购：常购品补货提醒。"),
    ("高价值流失", "lifecycle", {"avg_order_value_min": "150", "recency_min": "31"}, None, "专人回访，了解原因并送上回归礼遇。"),
    ("爱买生鲜", "tag", {"favourite_category_name": "生鲜"}, None, "生鲜上新与补货优先通知。"),
    ("常退货", "tag", {"refund_rate_min": "0.2", "orders_365_min": "3"}, None, "关注品质与售后体验。"),
    ("早上下单", "tag", {"usual_hour_from": "5", "usual_hour_to": "10"}, None, "消息在早上发送。"),
]

BEAT = [
    # name, task, crontab (minute, hour, day of week)
    ("每晚更新会员分层 (segments: nightly recompute)", "segments.tasks.recompute_nightly_task", ("0", "3", "*")),
    ("每周全量重算与流失模型拟合 (segments: weekly full recompute)", "segments.tasks.recompute_full_task", ("0", "2", "0")),
]


def create(apps, schema_editor):
    Tier = apps.get_model("segments", "Tier")
    Circle = apps.get_model("segments", "Circle")
    SegmentSettings = apps.get_model("segments", "SegmentSettings")
    for code, name, rank, catch_all, recency, f_cmp, f, m_cmp, m, playbook in TIERS:
        Tier.objects.get_or_create(
            code=code,
            defaults={
                "name": name, "rank": rank, "is_catch_all": catch_all, "max_recency_days": recency,
                "orders_comparison": f_cmp, "orders_365": f, "spend_comparison": m_cmp, "spend_365": m, "playbook": playbook,
            },
        )
    for name, kind, rules, share, playbook in CIRCLES:
        Circle.objects.get_or_create(
            name=name, defaults={"kind": kind, "rules": rules, "usual_share": share and Decimal(share), "description": playbook}
        )
    SegmentSettings.objects.get_or_create(pk=1)
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, (minute, hour, day_of_week) in BEAT:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week=day_of_week, day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": schedule})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=[task for _, task, _ in BEAT]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove)]
