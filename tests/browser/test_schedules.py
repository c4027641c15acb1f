"""Staff move a scheduled run (the beat schedules are rows in the admin) and see it in words."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_scheduled_run_shows_when_it_runs_in_words(staff_login, live_server):
    at_five = CrontabSchedule.objects.create(minute="5", hour="0", timezone="Asia/Shanghai")
    at_ten = CrontabSchedule.objects.create(minute="10", hour="0", timezone="Asia/Shanghai")
    task = PeriodicTask.objects.create(name="积分到账刷新", task="loyalty.tasks.pending_release_task", crontab=at_five)
    page = staff_login
    page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/{task.pk}/change/")
    help_text = page.locator(".field-crontab .help")
    assert "12:05 AM" in help_text.inner_text()  # cron-descriptor writes English
    page.select_option("#id_crontab", str(at_ten.pk))
    assert "12:10 AM" in help_text.inner_text() and "12:05" not in help_text.inner_text()
    assert not page.locator(".field-crontab_translation").is_visible()
