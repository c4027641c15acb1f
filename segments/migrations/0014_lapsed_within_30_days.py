"""高价值流失 (DOMAIN.md section 4: "no order in 30 days") reads the 30 days as
every window of DOMAIN.md does: the as-of date and the 29 days before it. No
order in them is R >= 30; the shipped default said R >= 31 (the 沉睡 circle's
"R > 30 d"), which kept a member whose last order was exactly 30 days ago out
for a day. A rule staff have edited is left as they set it."""

from django.db import migrations

NAME = "高价值流失"
SHIPPED = {"avg_order_value_min": "150", "recency_min": "31"}
WINDOW = {"avg_order_value_min": "150", "recency_min": "30"}


def swap(apps, rules_from: dict, rules_to: dict) -> None:
    for circle in apps.get_model("segments", "Circle").objects.filter(name=NAME):
        if circle.rules == rules_from:
            circle.rules = rules_to
            circle.save(update_fields=["rules"])


def forwards(apps, schema_editor):
    swap(apps, SHIPPED, WINDOW)


def backwards(apps, schema_editor):
    swap(apps, WINDOW, SHIPPED)


class Migration(migrations.Migration):
    dependencies = [("segments", "0013_recomputerun_max_line_id")]
    operations = [migrations.RunPython(forwards, backwards)]
