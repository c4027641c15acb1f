"""Importing through the admin: upload, check, review every bad row, confirm."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import AuditEvent, Member
from crm.importing.models import ImportJob, ImportStatus
from crm.resources import MemberResource, neutralise_formula
from tests.crm.factories import MemberFactory, UserFactory

pytestmark = pytest.mark.django_db

GOOD = "external_id,name,mobile,gender\nM1,张丽,13800138000,F\nM2,王强,13900139000,M\n"
BAD = "external_id,name,mobile,gender\nM1,张丽,13800138000,F\nM2,王强,12345,M\nM3,=HYPERLINK(\"x\"),13700137000,X\n"


def upload(client, text, name="members.csv", kind="members"):
    response = client.post(
        reverse("admin:crm_importjob_add"), {"kind": kind, "file": SimpleUploadedFile(name, text.encode())}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return ImportJob.objects.latest("id"), response["Location"]


def test_a_file_with_bad_rows_is_shown_row_by_row_and_nothing_is_written(admin_client):
    job, location = upload(admin_client, BAD)
    html = admin_client.get(location).content.decode()
    assert job.status == ImportStatus.VALIDATED
    assert (job.total_rows, job.valid_rows, job.error_rows) == (3, 1, 2)
    errors = list(job.row_errors.values_list("row_no", "column", "value"))
    assert errors == [(3, "mobile", "12345"), (4, "gender", "X")]
    assert "12345" in html and 'value="valid_only"' in html and 'value="all"' not in html
    assert not Member.objects.exists()
    # Confirming everything is refused while rows are bad.
    admin_client.post(location, {"action": "all"})
    job.refresh_from_db()
    assert job.status == ImportStatus.VALIDATED and not Member.objects.exists()


def test_importing_only_the_valid_rows_when_the_user_chooses_to(admin_client):
    job, location = upload(admin_client, BAD)
    stored = job.file.name
    response = admin_client.post(location, {"action": "valid_only"})
    job.refresh_from_db()
    assert response.status_code == 302 and job.status == ImportStatus.DONE
    assert list(Member.objects.values_list("external_id", flat=True)) == ["M1"]
    # The uploaded file is deleted once the import is over.
    assert not job.file and not job.file.storage.exists(stored)


def test_a_clean_file_is_checked_then_confirmed(admin_client):
    job, location = upload(admin_client, GOOD)
    html = admin_client.get(location).content.decode()
    assert 'value="all"' in html and job.created_count == 2 and not Member.objects.exists()
    admin_client.post(location, {"action": "all"})
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and Member.objects.count() == 2
    event = AuditEvent.objects.get(action="import")
    assert event.actor.username == "boss" and event.detail["created"] == 2 and "members.csv" in event.summary
    # Uploading it again changes nothing.
    job2, _ = upload(admin_client, GOOD)
    assert (job2.created_count, job2.updated_count, job2.unchanged_count) == (0, 0, 2)


def test_cancel_deletes_the_upload(admin_client):
    job, location = upload(admin_client, GOOD)
    stored = job.file.name
    admin_client.post(location, {"action": "cancel"})
    job.refresh_from_db()
    assert job.status == ImportStatus.CANCELLED and not job.file.storage.exists(stored)
    assert not Member.objects.exists()


def test_big_files_are_checked_by_a_worker(admin_client, settings, django_capture_on_commit_callbacks):
    settings.CRM_IMPORT_BACKGROUND_BYTES = 10  # every file counts as big
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job, location = upload(admin_client, GOOD)
    assert len(callbacks) == 1  # one task enqueued after the upload committed
    job.refresh_from_db()
    assert job.status == ImportStatus.VALIDATED
    progress = admin_client.get(reverse("admin:crm_importjob_progress", args=[job.pk])).json()
    assert progress["running"] is False and progress["rows"] == 2


def test_a_running_import_shows_a_progress_bar(admin_client):
    job, location = upload(admin_client, GOOD)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING)
    html = admin_client.get(location).content.decode()
    assert "<progress" in html and "import_progress.js" in html


def test_bad_uploads_are_refused_with_a_message(admin_client, settings):
    url = reverse("admin:crm_importjob_add")
    response = admin_client.post(url, {"kind": "members", "file": SimpleUploadedFile("photo.png", b"x")})
    assert response.status_code == 200 and ".xlsx" in response.content.decode()
    settings.CRM_IMPORT_MAX_UPLOAD_BYTES = 5
    response = admin_client.post(url, {"kind": "members", "file": SimpleUploadedFile("m.csv", GOOD.encode())})
    assert response.status_code == 200 and "MB" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_the_error_list_downloads_with_formulas_neutralised(admin_client):
    text = "external_id,name,mobile,gender\n=1+2,张丽,=cmd,F\n"
    job, _ = upload(admin_client, text)
    response = admin_client.get(reverse("admin:crm_importjob_errors", args=[job.pk]))
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert "'=cmd" in body and "\n3," not in body and ",=cmd" not in body


def test_the_error_list_downloads_every_error_in_row_order(admin_client):
    """Thousands of errors, two on some rows, stream out whole and in order (read a page at a time)."""
    from crm.importing.models import ImportRowError

    job, _ = upload(admin_client, "external_id,name,mobile,gender\nM1,张丽,=cmd,F\n")
    job.row_errors.all().delete()
    # Written out of order; rows 3..2503, and rows divisible by 7 have a second error on another column.
    rows = list(range(2503, 2, -1))
    ImportRowError.objects.bulk_create(
        [ImportRowError(job=job, row_no=row, column="mobile", message="bad", value=str(row)) for row in rows]
        + [ImportRowError(job=job, row_no=row, column="gender", message="bad", value=f"g{row}") for row in rows if row % 7 == 0]
    )
    response = admin_client.get(reverse("admin:crm_importjob_errors", args=[job.pk]))
    lines = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()[1:]
    listed = [(int(line.split(",")[0]), line.split(",")[1]) for line in lines]
    expected = sorted([(row, "mobile") for row in rows] + [(row, "gender") for row in rows if row % 7 == 0], key=lambda pair: (pair[0], pair[1] != "mobile"))
    assert listed == expected


def test_staff_without_the_right_cannot_import(client):
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(user)
    assert client.get(reverse("admin:crm_importjob_add")).status_code == 403
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_order", "change_order"]))
    client.force_login(user)
    response = client.post(
        reverse("admin:crm_importjob_add"), {"kind": "members", "file": SimpleUploadedFile("m.csv", GOOD.encode())}
    )
    assert response.status_code == 403 and not ImportJob.objects.exists()


@pytest.mark.parametrize("value", ["=SUM(A1)", "+1", "-1", "@x", "\tx", "\rx"])
def test_exported_cells_never_start_a_formula(value):
    assert neutralise_formula(value) == "'" + value
    MemberFactory(name=value, mobile="13912345678")
    dataset = MemberResource().export()
    row = dataset.dict[0]
    assert row["姓名"] == "'" + value
    assert row["手机号"] == "139****5678"


def test_the_export_page_opens(admin_client):
    MemberFactory()
    assert admin_client.get(reverse("admin:crm_member_export")).status_code == 200


def test_bad_rows_are_explained_in_chinese_by_default(admin_client, chinese):
    job, location = upload(admin_client, BAD)
    html = admin_client.get(location).content.decode()
    assert "大陆手机号为 11 位" in html and "仅导入 1 条有效行" in html and "已检查，待确认" in html
