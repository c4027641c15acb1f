"""Journeys may start when a member's points enter the 30 days before they
expire; the shipped reminder journey (积分到期提醒) does."""

from django.db import migrations, models

TEMPLATE = (
    "积分到期提醒",
    "{{ salutation }}，您有{{ points_expiring }}积分将在30天内到期，可兑换免运费、优惠券等权益，别让积分白白过期哦。",
)
JOURNEY = "积分到期提醒"


def create(apps, schema_editor):
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    Campaign = apps.get_model("campaigns", "Campaign")
    Variant = apps.get_model("campaigns", "Variant")
    Journey = apps.get_model("campaigns", "Journey")
    JourneyStep = apps.get_model("campaigns", "JourneyStep")
    name, body = TEMPLATE
    template, _ = MessageTemplate.objects.get_or_create(name=name, defaults={"body": body, "channel": "sms", "purpose": "marketing"})
    journey, created = Journey.objects.get_or_create(
        name=JOURNEY,
        defaults={"trigger": "points_due", "description": "积分进入到期前30天且仍有余额的会员，收到一次提醒（每个到期日一次）。"},
    )
    if created:
        campaign = Campaign.objects.create(
            name=f"旅程 {JOURNEY} · D0", channel="sms", purpose="marketing", status="journey", conversion_days=journey.conversion_days
        )
        Variant.objects.create(campaign=campaign, label="A", template=template, share=100)
        JourneyStep.objects.create(journey=journey, day=0, template=template, campaign=campaign)


def remove(apps, schema_editor):
    apps.get_model("campaigns", "Journey").objects.filter(name=JOURNEY).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0007_outbox_lean_writes")]

    operations = [
        migrations.AlterField(
            model_name="journey",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("first_order", "first order"), ("no_order", "registered without an order for some days"),
                    ("circle", "entered a circle (e.g. became dormant)"), ("tier_up", "moved up a tier"), ("birthday", "birthday"),
                    ("points_due", "points expiring within 30 days"),
                ],
                max_length=12, verbose_name="starts on",
            ),
        ),
        migrations.RunPython(create, remove),
    ]
