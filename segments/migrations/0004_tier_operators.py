"""Operators see the tiers their role works: S and A for the S/A operators,
B and C for the B/C operators (editable on each tier); they no longer see
every member."""

from django.db import migrations, models


OPERATED = {"S": "S/A 运营 S/A operator", "A": "S/A 运营 S/A operator", "B": "B/C 运营 B/C operator", "C": "B/C 运营 B/C operator"}


def assign(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)
    Tier = apps.get_model("segments", "Tier")
    Group = apps.get_model("auth", "Group")
    for code, group_name in OPERATED.items():
        tier = Tier.objects.filter(code=code).first()
        group = Group.objects.filter(name=group_name).first()
        if tier and group:
            tier.operators.add(group)


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('segments', '0003_roles'),
    ]

    operations = [
        migrations.AddField(
            model_name='tier',
            name='operators',
            field=models.ManyToManyField(blank=True, help_text="Staff in these roles see and work this tier's members (without seeing every member).", related_name='+', to='auth.group', verbose_name='operated by'),
        ),
        migrations.RunPython(assign, migrations.RunPython.noop),
    ]
