import datetime as dt

from django.db import migrations, models


def rows_scored_before(apps, schema_editor):
    """Rows scored before the day was stored: due now, so that the next nightly run takes them in once and stores it."""
    apps.get_model("segments", "MemberMetrics").objects.filter(p_alive__isnull=False).update(band_moves_on=dt.date(2000, 1, 1))


class Migration(migrations.Migration):

    dependencies = [
        ("segments", "0007_recomputerun_max_member_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="membermetrics",
            name="band_moves_on",
            field=models.DateField(blank=True, db_index=True, null=True, verbose_name="churn risk moves on"),
        ),
        migrations.RunPython(rows_scored_before, migrations.RunPython.noop, elidable=True),
    ]
