from django.db import migrations


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    """The roles gain the rights over the shop's API: HQ all of it, operators edit
    their tiers' offers, auditors read clients, usage and the webhook outbox."""

    dependencies = [("api", "0002_beat"), ("loyalty", "0003_roles"), ("campaigns", "0009_coupon_redeemed_order_no")]
    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
