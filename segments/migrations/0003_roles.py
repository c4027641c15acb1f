from django.db import migrations


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    """The roles gain the rights over tiers, circles, pins, reviews and group moves."""

    dependencies = [("segments", "0002_defaults"), ("crm", "0007_audit_tier_actions")]
    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
