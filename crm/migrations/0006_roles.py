from django.db import migrations


def apply_roles(apps, schema_editor):
    from crm.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0005_audit_log_and_member_rights"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("django_celery_results", "0011_taskresult_periodic_task_name"),
    ]
    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
