"""Import jobs: an uploaded file is checked (a dry run that writes nothing),
shown to the user, and imported only when the user confirms."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.importing import shopify
from crm.importing.engine import ImportOutcome, run_import
from crm.importing.specs import SPECS
from crm.audit import audit_record
from crm.models import AuditAction
from crm.importing.models import ImportJob, ImportPreset, ImportRowError, ImportStatus

logger = logging.getLogger(__name__)

# Sent after a file was imported and committed, from the admin flow and the
# import_* commands; receivers get kind, job (None from the command line) and
# member_ids (the members whose rows were written).
import_committed = Signal()

ERROR_BATCH = 5_000
FINAL = (ImportStatus.DONE, ImportStatus.REJECTED, ImportStatus.FAILED, ImportStatus.CANCELLED)


def progress_key(job_id: int) -> str:
    return f"import-progress:{job_id}"


def import_job_progress(job_id: int) -> dict:
    return cache.get(progress_key(job_id)) or {"rows": 0, "fraction": 0.0}


def import_job_create(*, kind: str, upload: UploadedFile, user, preset: str = "") -> ImportJob:
    """A job for an uploaded file; preset: shopify, or a saved ImportPreset's name whose mapping the job reads by."""
    mapping = {}
    if preset and preset != shopify.PRESET:
        mapping = ImportPreset.objects.get(name=preset).mapping
    job = ImportJob(kind=kind, original_name=upload.name[:255], uploaded_by=user, preset=preset, mapping=mapping)
    job.file.save(upload.name, upload, save=False)
    job.save()
    return job


def import_job_start(*, job: ImportJob, mode: str, enqueue: Callable[[int, str], object] | None = None) -> ImportJob:
    """Queue a dry run or an import of the job's file: to a worker through enqueue(job id,
    mode) (the caller passes crm.tasks.import_job_task.delay_on_commit: the tasks module
    imports this one, never the other way round), or right here without it."""
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED, mode=mode)
    cache.set(progress_key(job.pk), {"rows": 0, "fraction": 0.0}, 3600)
    if enqueue is not None:
        enqueue(job.pk, mode)
    else:
        import_job_run(job_id=job.pk, mode=mode)
    job.refresh_from_db()
    return job


def import_job_run(*, job_id: int, mode: str) -> ImportJob | None:
    """Run one job. A redelivered task after a crash runs it again: the crashed
    run's transaction was rolled back, and the upserts make a repeat harmless."""
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=(ImportStatus.QUEUED, ImportStatus.RUNNING)
    ).update(status=ImportStatus.RUNNING, mode=mode)
    if not claimed:
        return None
    job = ImportJob.objects.get(pk=job_id)

    def progress(rows: int, fraction: float) -> None:
        cache.set(progress_key(job_id), {"rows": rows, "fraction": round(fraction, 3)}, 3600)

    try:
        if job.preset == shopify.PRESET:
            outcome = shopify.shopify_import(Path(job.file.path), original_name=job.original_name, mode=mode, source=f"{job.original_name} (#{job.pk}, shopify)")
        else:
            outcome = run_import(
                SPECS[job.kind],
                Path(job.file.path),
                original_name=job.original_name,
                mode=mode,
                source=f"{job.original_name} (#{job.pk})",
                progress=progress,
                mapping=job.mapping or None,
            )
    except Exception as exc:  # noqa: BLE001 - the user sees the failure on the job page
        logger.exception("import job %s failed", job_id)
        job.status = ImportStatus.FAILED
        job.message = _("The import stopped with an unexpected error; nothing was written: %(error)s") % {
            "error": exc
        }
        job.finished_at = timezone.now()
        job.save()
        _discard_file(job)
        return job
    try:
        _store_outcome(job, outcome)
    finally:
        outcome.errors.close()
    if job.status in FINAL:
        _discard_file(job)
    if outcome.committed:
        import_announce(outcome, kind=job.kind, actor=job.uploaded_by, file_name=job.original_name, job=job)
    return job


def import_announce(outcome, *, kind: str, actor, file_name: str, job: ImportJob | None = None) -> None:
    """After a committed import: the audit line of each table it wrote (a Shopify file
    writes three), and import_committed for tiers, circles, points and coupons to follow."""
    for table_kind, result in getattr(outcome, "tables", {kind: outcome}).items():
        audit_import(actor=actor, kind=table_kind, file_name=file_name, outcome=result, obj=job)
    import_committed.send(sender=ImportJob, job=job, kind=kind, member_ids=outcome.member_ids)


def audit_import(*, actor, kind: str, file_name: str, outcome: ImportOutcome, obj=None) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.IMPORT,
        summary=f"{kind}: {file_name}"[:255],
        obj=obj,
        detail={
            "rows": outcome.total_rows,
            "valid": outcome.valid_rows,
            "created": outcome.created,
            "updated": outcome.updated,
            "valid_only": bool(outcome.errors.count),
        },
    )


def _store_outcome(job: ImportJob, outcome: ImportOutcome) -> None:
    with transaction.atomic():
        ImportRowError.objects.filter(job=job).delete()
        batch: list[ImportRowError] = []
        for error in outcome.errors:
            batch.append(
                ImportRowError(
                    job=job, row_no=error.row_no, column=_storable(error.column)[:64], message=_storable(error.message)[:255],
                    value=_storable(error.value),
                )
            )
            if len(batch) >= ERROR_BATCH:
                ImportRowError.objects.bulk_create(batch)
                batch.clear()
        ImportRowError.objects.bulk_create(batch)
        job.total_rows = outcome.total_rows
        job.valid_rows = outcome.valid_rows
        job.error_rows = outcome.error_rows
        job.created_count = outcome.created
        job.updated_count = outcome.updated
        job.unchanged_count = outcome.unchanged
        job.message = _storable(getattr(outcome, "summary", "") or _ignored_columns_message(outcome))
        if outcome.dry_run:
            job.status = ImportStatus.VALIDATED
        elif outcome.committed:
            job.status = ImportStatus.DONE
        else:
            job.status = ImportStatus.REJECTED
        job.finished_at = timezone.now()
        job.save()


def _storable(text: str) -> str:
    """A quoted cell may hold NUL bytes, which PostgreSQL text cannot: show them as ␀."""
    return text.replace("\x00", "\u2400")


def _ignored_columns_message(outcome: ImportOutcome) -> str:
    if not outcome.ignored_columns:
        return ""
    return _("Columns not used: %(columns)s") % {"columns": ", ".join(outcome.ignored_columns[:20])}


def import_job_cancel(*, job: ImportJob) -> None:
    if job.status in FINAL or job.is_running:
        return
    job.status = ImportStatus.CANCELLED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    _discard_file(job)


def _discard_file(job: ImportJob) -> None:
    if job.file:
        job.file.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(file="")


def import_jobs_sweep(*, older_than_hours: int = 24) -> int:
    """Cancel checked files nobody confirmed, and delete their uploads."""
    cutoff = timezone.now() - timezone.timedelta(hours=older_than_hours)
    stale = ImportJob.objects.filter(created_at__lt=cutoff, status=ImportStatus.VALIDATED)
    count = 0
    for job in stale.iterator():
        import_job_cancel(job=job)
        count += 1
    return count

