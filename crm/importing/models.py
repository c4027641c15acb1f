"""What the import screens keep: an uploaded file's job (checked, then imported on
confirmation) and the errors of its rows. Loaded with crm's models
(crm.apps.PartModelsConfig); the engine that fills them is crm.importing.engine."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportKind(models.TextChoices):
    MEMBERS = "members", _("members")
    ORDERS = "orders", _("orders")
    ORDER_LINES = "order_lines", _("order lines")
    EVENTS = "events", _("engagement events")


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    VALIDATED = "validated", _("checked, waiting for confirmation")
    DONE = "done", _("imported")
    REJECTED = "rejected", _("rejected, nothing written")
    FAILED = "failed", _("failed, nothing written")
    CANCELLED = "cancelled", _("cancelled")


class ImportMode(models.TextChoices):
    DRY_RUN = "dry_run", _("check only")
    ALL_OR_NOTHING = "all", _("import if every row is valid")
    VALID_ONLY = "valid_only", _("import the valid rows only")


class ImportJob(models.Model):
    """One uploaded file, checked (dry run) and then imported on confirmation."""

    kind = models.CharField(_("data"), max_length=12, choices=ImportKind.choices)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", blank=True)
    original_name = models.CharField(_("file name"), max_length=255)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("uploaded by")
    )
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    mode = models.CharField(_("mode"), max_length=12, choices=ImportMode.choices, default=ImportMode.DRY_RUN)
    status = models.CharField(_("status"), max_length=12, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    valid_rows = models.PositiveIntegerField(_("valid rows"), default=0)
    error_rows = models.PositiveIntegerField(_("rows with errors"), default=0)
    created_count = models.PositiveIntegerField(_("new"), default=0)
    updated_count = models.PositiveIntegerField(_("changed"), default=0)
    unchanged_count = models.PositiveIntegerField(_("unchanged"), default=0)
    message = models.TextField(_("message"), blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    preset = models.CharField(_("preset"), max_length=60, blank=True, help_text=_("How the file's columns were read: shopify, a saved preset, or empty."))
    mapping = models.JSONField(_("column mapping"), default=dict, blank=True, help_text=_("Field to the file's heading, where they differ."))

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.original_name}"

    @property
    def is_running(self) -> bool:
        return self.status in (ImportStatus.QUEUED, ImportStatus.RUNNING)


class ImportRowError(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_no = models.PositiveIntegerField(_("row"))
    column = models.CharField(_("column"), max_length=64, blank=True)
    message = models.CharField(_("reason"), max_length=255)
    value = models.CharField(_("value"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("import error")
        verbose_name_plural = _("import errors")
        ordering = ["row_no", "id"]
        indexes = [models.Index(fields=["job", "row_no"], name="importerror_job_row_idx")]


class ImportPreset(models.Model):
    """The headings of a shop system's export mapped to the import's fields, saved
    from the check page: picked on upload, or import_* FILE --preset NAME."""

    name = models.CharField(_("name"), max_length=60, unique=True)
    kind = models.CharField(_("data"), max_length=12, choices=ImportKind.choices)
    mapping = models.JSONField(_("column mapping"), default=dict, help_text=_("Field to the file's heading."))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("import preset")
        verbose_name_plural = _("import presets")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"
