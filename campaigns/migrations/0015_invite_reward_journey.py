"""Journeys may start when a member is given an invite reward; the shipped one
(邀请有礼到账) tells him the same day that the coupon is in his account, with
its code and last day (the enrolment keeps the reward's coupon)."""

import django.db.models.deletion
from django.db import migrations, models

JOURNEY = "邀请有礼到账"
TEMPLATE = (
    JOURNEY,
    "{{ salutation }}，感谢您邀请好友加入{{ community }}！邀请奖励{{ coupon }}已发到您的账户，券码{{ coupon_code }}，{{ coupon_expiry }}前有效。",
)


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
        defaults={"trigger": "invite_reward", "description": "会员邀请好友达到奖励档位、奖励券发放后，当天告知券已到账（券面、券码、有效期）。"},
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

    dependencies = [
        ('campaigns', '0014_invite_offer_variable'),
    ]

    operations = [
        migrations.AddField(
            model_name='enrolment',
            name='coupon',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='campaigns.coupon', verbose_name='coupon given'),
        ),
        migrations.AlterField(
            model_name='journey',
            name='trigger',
            field=models.CharField(choices=[('first_order', 'first order'), ('no_order', 'registered without an order for some days'), ('circle', 'entered a circle (e.g. became dormant)'), ('tier_up', 'moved up a tier'), ('birthday', 'birthday'), ('points_due', 'points expiring within 30 days'), ('invite_reward', "got an invite reward (its coupon is the message's coupon)")], max_length=16, verbose_name='starts on'),
        ),
        migrations.RunPython(create, remove),
    ]
