from django.db import migrations


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    """The roles gain the rights over the loyalty programme: HQ all of it, operators
    read it and redeem for their members, auditors read it."""

    dependencies = [("loyalty", "0002_defaults"), ("campaigns", "0006_kpi_defaults"), ("segments", "0004_tier_operators")]
    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
