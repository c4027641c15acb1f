# A run's liveness is its own advisory lock, no longer its session's pid (which
# behind a pooler in transaction pooling is not the server connection's).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("segments", "0011_tier_change_rebuild"),
    ]

    operations = [
        migrations.AddField(
            model_name="recomputerun",
            name="claimed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        # Runs a worker had taken up stay "taken up", so that an interrupted one is still closed.
        migrations.RunSQL(
            "UPDATE segments_recomputerun SET claimed_at = started_at WHERE backend_pid IS NOT NULL",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveField(
            model_name="recomputerun",
            name="backend_pid",
        ),
    ]
