"""The dashboard's traffic lights with sensible defaults staff adjust, its
settings, the beat entry that writes the daily snapshot after the nightly
recompute, and the roles' right to read it."""

from django.db import migrations

THRESHOLDS = [
    # indicator, higher is better, green from, yellow from
    ("repurchase_rate", True, 0.35, 0.25),
    ("aov", True, 60, 40),
    ("top5_share", False, 0.5, 0.65),
    ("first_order_conversion", True, 0.4, 0.2),
    ("retention_7d", True, 0.3, 0.15),
    ("high_risk_share", False, 0.1, 0.2),
    ("upgrade_rate", True, 0.05, 0.02),
    ("downgrade_rate", False, 0.05, 0.1),
    ("not_contacted_share", False, 0.3, 0.5),
    ("marketing_balance", False, 0.25, 0.5),  # distance from an even share (|share of messages / share of members - 1|)
    ("roi", True, 1.0, 0.0),
    ("follow_up_rate", True, 0.7, 0.4),
]
BEAT = ("每天04:30写入看板快照 (campaigns: KPI snapshot)", "campaigns.tasks.kpi_snapshot_task", ("30", "4"))


def create(apps, schema_editor):
    KpiThreshold = apps.get_model("campaigns", "KpiThreshold")
    for indicator, higher, green, yellow in THRESHOLDS:
        KpiThreshold.objects.get_or_create(indicator=indicator, defaults={"higher_is_better": higher, "green": green, "yellow": yellow})
    apps.get_model("campaigns", "KpiSettings").objects.get_or_create(pk=1)
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    name, task, (minute, hour) = BEAT
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
    )
    PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": schedule})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=BEAT[1]).delete()


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0005_kpi_snapshots"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create, remove), migrations.RunPython(apply_roles, migrations.RunPython.noop)]
