"""A big import handed to a real Celery worker process through the configured
broker (kombu's filesystem transport by default, Redis when CELERY_BROKER_URL
says so) and database."""

import time

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile

from crm.importing.jobs import import_job_start
from crm.tasks import import_job_task
from crm.models import Member
from crm.importing.models import ImportJob, ImportMode, ImportStatus

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings, start_worker):
    settings.MEDIA_ROOT = django_settings.DATA_DIR / "media"
    return start_worker()


def wait_for(job: ImportJob, polls: int = 300) -> ImportJob:
    """Poll until the worker is done with the job (at most polls × 0.3 s)."""
    for _ in range(polls):
        job.refresh_from_db()
        if not job.is_running:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job still {job.status} after {polls} polls")


def test_a_worker_checks_then_imports_a_big_file(worker, admin_user):
    rows = "\n".join(f"M{i:06d},会员{i},1380000{i:04d},F" for i in range(3000))
    job = ImportJob(kind="members", original_name="big.csv", uploaded_by=admin_user)
    job.file.save("big.csv", ContentFile(f"external_id,name,mobile,gender\n{rows}\n".encode()), save=False)
    job.save()

    import_job_start(job=job, mode=ImportMode.DRY_RUN, enqueue=import_job_task.delay_on_commit)
    job = wait_for(job)
    assert job.status == ImportStatus.VALIDATED and job.created_count == 3000
    assert not Member.objects.exists()

    import_job_start(job=job, mode=ImportMode.ALL_OR_NOTHING, enqueue=import_job_task.delay_on_commit)
    job = wait_for(job)
    assert job.status == ImportStatus.DONE, job.message
    assert Member.objects.count() == 3000
    assert not job.file


def test_a_new_order_moves_the_member_through_a_live_worker(worker):
    """No manual step: the order's commit enqueues the recompute, the worker places the member."""
    import datetime as dt
    from decimal import Decimal

    from crm.models import Order
    from segments.models import MemberMetrics
    from segments.services import tiers_recompute

    # A transactional test starts from an emptied database: put the shipped ladder back.
    import importlib

    from django.apps import apps

    importlib.import_module("segments.migrations.0002_defaults").create(apps, None)
    member = Member.objects.create(external_id="M-LIVE", name="王姐")
    tiers_recompute(member_ids=[member.pk])
    assert MemberMetrics.objects.get(member=member).tier.code == "C"
    now = dt.datetime.now(tz=dt.timezone.utc)
    for n in range(3):
        Order.objects.create(member=member, order_no=f"SO-LIVE-{n}", ordered_at=now - dt.timedelta(hours=n + 1), amount=Decimal("400"))
    for _ in range(200):
        tier = MemberMetrics.objects.select_related("tier").get(member=member).tier.code
        if tier == "B":
            break
        time.sleep(0.3)
    assert tier == "B"
    assert member.tier_changes.filter(reason="order").exists()
