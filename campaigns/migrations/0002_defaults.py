"""The defaults of DOMAIN.md section 5 as rows staff edit: forms of address,
the Advertising Law's absolute terms, the sending policy, the per-minute beat
entry that launches due campaigns and hands due messages to the workers; and
the roles' rights over campaigns."""

from django.db import migrations

SALUTATIONS = [
    # gender, age band, suffix, priority
    ("F", "55+", "阿姨", 50),
    ("F", "45-54", "姐", 40),
    ("F", "35-44", "姐", 40),
    ("M", "55+", "叔", 50),
    ("M", "", "先生", 20),
    ("F", "", "女士", 20),
]
BANNED = ["最", "第一", "国家级", "最佳", "最高级", "顶级", "极品", "首个", "唯一", "绝对", "全网最低", "万能"]


def create(apps, schema_editor):
    SalutationRule = apps.get_model("campaigns", "SalutationRule")
    BannedWord = apps.get_model("campaigns", "BannedWord")
    SendingPolicy = apps.get_model("campaigns", "SendingPolicy")
    if not SalutationRule.objects.exists():
        SalutationRule.objects.bulk_create(
            SalutationRule(gender=gender, age_band=band, suffix=suffix, priority=priority) for gender, band, suffix, priority in SALUTATIONS
        )
    for word in BANNED:
        BannedWord.objects.get_or_create(word=word, defaults={"note": "《广告法》第九条 绝对化用语"})
    SendingPolicy.objects.get_or_create(pk=1)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="每分钟发送到期消息 (campaigns: send due)", defaults={"task": "campaigns.tasks.send_due_task", "interval": every_minute}
    )


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task="campaigns.tasks.send_due_task").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("crm", "0008_member_email_campaign_audit"),
        ("segments", "0003_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove), migrations.RunPython(apply_roles, migrations.RunPython.noop)]
