"""The journeys of DOMAIN.md section 5 and the group leader's worklist rules, as
rows staff edit; the beat entries that run them; the roles' new rights.

Each journey step owns a hidden campaign (status "journey") that the outbox
sends under; JourneyStep.save() keeps it in step, but the migration's
historical models have no save() of ours, so it is written here by hand."""

from decimal import Decimal

from django.db import migrations

T = "{{ salutation }}"
TEMPLATES = {
    # name: body (SMS, marketing; the unsubscribe line is added when sent)
    "欢迎D1 感谢与食谱": T + "，感谢您在{{ community }}下的首单！{{ usual_product|default:'新鲜食材' }}这样做更好吃：洗净切块，少油快炒，出锅前撒点葱花。",
    "欢迎D3 社区券": T + "，送您一张{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效，{{ community }}的邻居们都在团，欢迎再来看看。",
    "欢迎D7 产地故事": T + "，您买的{{ usual_product|default:'食材' }}来自合作产地，清晨采收、当日送达，{{ leader|default:'团长' }}每天亲自把关品质。",
    "欢迎D15 邀请有礼": T + "，邀请好友加入{{ community }}：邀1位好友得¥5，邀3位好友得¥20，奖励直接发到您的账户。",
    "欢迎D30 专属权益": T + "，感谢一个月来的陪伴！生日当月有专属礼遇，新品上架您可优先购买。",
    "注册未下单 首单礼包": T + "，您的首单礼包已到账：{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效。有问题随时找{{ leader|default:'团长' }}。",
    "沉睡唤醒 回归礼包": T + "，好久不见！您常买的{{ usual_product|default:'好货' }}又上新了，回来就送{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效。",
    "沉睡唤醒 到期提醒": T + "，您的回归礼券快到期了，{{ leader|default:'团长' }}给您留了一份{{ usual_product|default:'新鲜好货' }}，欢迎回来看看。",
    "生日祝福": T + "，生日快乐！{{ community|default:'我们' }}送您一份生日礼：{{ coupon }}，券码{{ coupon_code }}，{{ coupon_expiry }}前有效。",
    "升级祝贺": T + "，恭喜您升级为{{ tier }}会员！专属权益已为您开通，{{ leader|default:'团长' }}随时为您服务。",
    "补货提醒": T + "，您上次买的{{ product }}补货啦，数量有限，欢迎到{{ community|default:'团里' }}下单。",
}

COUPON_5 = {"coupon_kind": "amount", "coupon_value": Decimal("5"), "coupon_days": 7}
COUPON_10 = {"coupon_kind": "amount", "coupon_value": Decimal("10"), "coupon_days": 7}
COUPON_BIRTHDAY = {"coupon_kind": "amount", "coupon_value": Decimal("10"), "coupon_days": 14}

JOURNEYS = [
    # name, trigger, options, steps [(day, template, coupon)], description
    (
        "首单欢迎", "first_order", {"priority": 10, "exit_on_order": True},
        [(1, "欢迎D1 感谢与食谱", {}), (3, "欢迎D3 社区券", COUPON_5), (7, "欢迎D7 产地故事", {}),
         (15, "欢迎D15 邀请有礼", {}), (30, "欢迎D30 专属权益", {})],
        "首单后第1/3/7/15/30天的陪伴，目标是第二单；下了第二单即结束。",
    ),
    (
        "注册7天未下单", "no_order", {"priority": 5, "exit_on_order": True, "trigger_days": 7},
        [(0, "注册未下单 首单礼包", COUPON_10)],
        "注册满7天仍未下单的会员收到首单礼包。",
    ),
    (
        "沉睡唤醒", "circle", {"priority": 20, "exit_on_order": True, "control_share": 10, "circle": "沉睡"},
        [(0, "沉睡唤醒 回归礼包", COUPON_10), (5, "沉睡唤醒 到期提醒", {})],
        "进入“沉睡”圈的会员：回归礼包，5天后提醒券快到期；下单即结束。10% 对照组用于衡量效果。",
    ),
    ("生日祝福", "birthday", {}, [(0, "生日祝福", COUPON_BIRTHDAY)], "生日当天的祝福与生日礼券（14天有效）。"),
    ("升级祝贺", "tier_up", {"exit_on_tier_left": True}, [(0, "升级祝贺", {})], "升级后的祝贺与权益说明。"),
]

WORKLIST = [
    # kind, priority, script
    ("at_risk", 90, T + "，好久没见您来团里了，您常买的{{ usual_product|default:'好货' }}到新货了，我给您留着呢。"),
    ("dormant_vip", 80, T + "，想您啦！您常买的{{ usual_product|default:'好货' }}今天特价，特意给您留了两份。"),
    ("birthday", 70, T + "，生日快乐！团里给您准备了一份小礼物，方便时来取。"),
    ("no_second", 60, T + "，上次的{{ usual_product|default:'东西' }}还合口味吗？有需要随时跟我说。"),
    ("group_move", 50, T + "，恭喜您升级为{{ tier }}会员，邀请您加入专属群，享受更多服务。"),
]

BEAT = [
    ("每10分钟推进会员旅程 (campaigns: journeys)", "campaigns.tasks.journeys_run_task", {"interval": 10}),
    ("每天07:30生成团长工作清单 (campaigns: worklist)", "campaigns.tasks.worklist_build_task", {"crontab": ("30", "7")}),
]


def create(apps, schema_editor):
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    Campaign = apps.get_model("campaigns", "Campaign")
    Variant = apps.get_model("campaigns", "Variant")
    Journey = apps.get_model("campaigns", "Journey")
    JourneyStep = apps.get_model("campaigns", "JourneyStep")
    Circle = apps.get_model("segments", "Circle")
    Tier = apps.get_model("segments", "Tier")
    templates = {
        name: MessageTemplate.objects.get_or_create(name=name, defaults={"body": body, "channel": "sms", "purpose": "marketing"})[0]
        for name, body in TEMPLATES.items()
    }
    for name, trigger, options, steps, description in JOURNEYS:
        options = dict(options)
        circle_name = options.pop("circle", None)
        circle = Circle.objects.filter(name=circle_name).first() if circle_name else None
        if circle_name and circle is None:
            continue
        journey, created = Journey.objects.get_or_create(
            name=name, defaults={"trigger": trigger, "trigger_circle": circle, "description": description, **options}
        )
        if not created:
            continue
        for day, template_name, coupon in steps:
            template = templates[template_name]
            campaign = Campaign.objects.create(
                name=f"旅程 {name} · D{day}", channel=template.channel, purpose=template.purpose, status="journey",
                conversion_days=journey.conversion_days, **coupon,
            )
            Variant.objects.create(campaign=campaign, label="A", template=template, share=100)
            JourneyStep.objects.create(journey=journey, day=day, template=template, campaign=campaign, **coupon)
    WorklistRule = apps.get_model("campaigns", "WorklistRule")
    for kind, priority, script in WORKLIST:
        WorklistRule.objects.get_or_create(kind=kind, defaults={"priority": priority, "script": script})
    WorklistSettings = apps.get_model("campaigns", "WorklistSettings")
    WorklistSettings.objects.get_or_create(
        pk=1, defaults={"vip_tier": Tier.objects.filter(code="A").first(), "dormant_circle": Circle.objects.filter(name="沉睡").first()}
    )
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, when in BEAT:
        if "interval" in when:
            schedule = {"interval": IntervalSchedule.objects.get_or_create(every=when["interval"], period="minutes")[0]}
        else:
            minute, hour = when["crontab"]
            schedule = {
                "crontab": CrontabSchedule.objects.get_or_create(
                    minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
                )[0]
            }
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, **schedule})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=[task for _, task, _ in BEAT]).delete()


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_journeys_worklist"),
        ("segments", "0004_tier_operators"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove), migrations.RunPython(apply_roles, migrations.RunPython.noop)]
