"""A thousand malformed files (tests/crm/fuzz_files.py, seeded) through the
admin's upload → check → confirm flow and through the import commands: no
server error, nothing half-written, and every rejection names a row and a
reason. A failure prints the file's number; `malformed_files(SEED)[n]`
rebuilds it byte for byte."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils.html import escape

from crm.models import Consent, EngagementEvent, Member, Order, OrderLine
from crm.importing.models import ImportJob, ImportStatus
from tests.crm.fuzz_files import KNOWN_MEMBERS, malformed_files

pytestmark = pytest.mark.django_db

SEED = 20261201
FILES = malformed_files(SEED, 1000)
ROW_ERROR = re.compile(r"^row \d+(, [^:\n]+)?: \S", re.MULTILINE)


@pytest.fixture
def known():
    """The members and orders that order, line and event files refer to."""
    members = Member.objects.bulk_create(Member(external_id=f"M{n:05d}", name=f"会员{n}") for n in range(KNOWN_MEMBERS))
    Order.objects.bulk_create(
        Order(member=member, order_no=f"SO{n:05d}", ordered_at="2025-01-05T10:00:00+08:00", amount=10) for n, member in enumerate(members)
    )


def counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Member, Order, OrderLine, EngagementEvent, Consent))


def test_the_generator_is_reproducible_and_covers_every_kind_of_damage():
    again = malformed_files(SEED, 1000)
    assert [f.data for f in again] == [f.data for f in FILES]
    seen = {mutation.split()[0] for f in FILES for mutation in f.mutations}
    assert {
        "encoding", "delimiter", "missing_column", "extra_column", "bad_date", "bad_amount", "duplicate_key", "formula", "huge_cell",
        "truncated_xlsx", "stray", "empty", "cut",
    } <= seen
    assert {f.kind for f in FILES} == {"members", "orders", "order_lines", "events"}


def test_every_malformed_file_through_the_commands(known, tmp_path):
    rejected = 0
    for file in FILES:
        path = tmp_path / file.name
        path.write_bytes(file.data)
        before = counts()
        errors = StringIO()
        try:
            call_command(f"import_{file.kind}", str(path), stdout=StringIO(), stderr=errors)
        except CommandError:
            rejected += 1
            assert counts() == before, f"{file!r} was rejected but wrote rows"
            assert ROW_ERROR.search(errors.getvalue()), f"{file!r}: a rejection without a row and a reason: {errors.getvalue()[:300]}"
        else:
            assert not errors.getvalue(), file
    # The generator really damages files: most are refused, the rest (an extra column, a formula in a name) import.
    assert rejected > len(FILES) * 0.75


def test_every_malformed_file_through_the_admin(known, admin_client, settings):
    settings.CRM_IMPORT_BACKGROUND_BYTES = 10**9  # checked in the request: a worker would see the same
    add = reverse("admin:crm_importjob_add")
    outcomes = {"refused at upload": 0, "rejected": 0, "imported": 0}
    for file in FILES:
        before = counts()
        response = admin_client.post(add, {"kind": file.kind, "file": SimpleUploadedFile(file.name, file.data)})
        if response.status_code == 200:  # the upload form itself said no (an empty file)
            assert "errornote" in response.content.decode() or "errorlist" in response.content.decode(), file
            outcomes["refused at upload"] += 1
            continue
        assert response.status_code == 302, file
        job = ImportJob.objects.latest("id")
        page = admin_client.get(response["Location"])
        assert page.status_code == 200, file
        errors = list(job.row_errors.order_by("row_no").values_list("row_no", "message"))
        if errors:
            assert job.status == ImportStatus.VALIDATED, file
            assert all(row_no >= 1 and message for row_no, message in errors), file
            assert escape(errors[0][1]) in page.content.decode(), f"{file!r}: the page does not say what is wrong"
            admin_client.post(response["Location"], {"action": "all"})  # confirming everything is refused
            job.refresh_from_db()
            assert job.status == ImportStatus.VALIDATED and counts() == before, f"{file!r} was written despite its errors"
            admin_client.post(response["Location"], {"action": "cancel"})
            outcomes["rejected"] += 1
        else:
            admin_client.post(response["Location"], {"action": "all"})
            job.refresh_from_db()
            assert job.status in (ImportStatus.DONE, ImportStatus.REJECTED), (file, job.status, job.message)
            outcomes["imported"] += 1
    assert outcomes["rejected"] > len(FILES) * 0.75, outcomes
