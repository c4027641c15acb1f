"""Import screens: upload a file, see it checked (every bad row with its row
number, column, reason and value), then confirm, import the valid rows only,
or cancel. Nothing is written before the user confirms."""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import quote

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.importing import presets, shopify
from crm.importing.jobs import import_job_cancel, import_job_create, import_job_progress, import_job_start
from crm.tasks import import_job_task
from crm.importing.specs import SPECS
from crm.importing.models import ImportJob, ImportKind, ImportMode, ImportPreset, ImportStatus
from crm.resources import neutralise_formula
from crm.scoping import sees_all_members

ERRORS_PER_PAGE = 100
ALLOWED_SUFFIXES = (".csv", ".txt", ".xlsx")
TARGET_MODELS = {"members": "member", "orders": "order", "order_lines": "orderline", "events": "engagementevent"}


def may_import(request: HttpRequest, kind: str) -> bool:
    model = TARGET_MODELS[kind]
    return request.user.has_perms([f"crm.add_{model}", f"crm.change_{model}"])


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("data"), choices=ImportKind.choices)
    file = forms.FileField(
        label=gettext_lazy("file"),
        help_text=gettext_lazy("CSV (UTF-8 or GBK) or Excel .xlsx; row 1 holds the column headings."),
    )
    preset = forms.ChoiceField(
        label=gettext_lazy("headings"), required=False,
        help_text=gettext_lazy("A file exported from your shop system as it is: pick its preset, or map its columns on the check page."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["preset"].choices = [
            ("", _("the import's own headings (below)")),
            (shopify.PRESET, _("Shopify order export (orders with their lines)")),
            *((preset.name, str(preset)) for preset in ImportPreset.objects.all()),
        ]

    def clean(self):
        data = super().clean()
        kind, name = data.get("kind"), data.get("preset")
        if name == shopify.PRESET and kind != ImportKind.ORDERS:
            self.add_error("preset", _("Shopify's order export brings in orders: choose “orders” as the data."))
        elif name and name != shopify.PRESET:
            preset = ImportPreset.objects.filter(name=name).first()
            if preset is None or preset.kind != kind:
                self.add_error("preset", _("This preset reads another kind of file."))
        return data

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(ALLOWED_SUFFIXES):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."))
        if upload.size > settings.CRM_IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(limit)d MB.") % {"limit": settings.CRM_IMPORT_MAX_UPLOAD_BYTES // 2**20}
            )
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        return upload


class ColumnMappingForm(forms.Form):
    """One choice per field: which of the file's columns holds it; and a name to save the mapping under."""

    preset_name = forms.CharField(
        label=gettext_lazy("save as preset"), max_length=60, required=False,
        help_text=gettext_lazy("A name (say 有赞订单) to pick this mapping next time, or to pass to import_* --preset."),
    )

    def __init__(self, *args, spec, headings: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        choices = [("", "—"), *((heading, heading) for heading in headings if heading)]
        for column in spec.columns:
            self.fields[f"map_{column.name}"] = forms.ChoiceField(
                label=f"{column.heading} ({column.name})", choices=choices, required=False,
            )
            self.initial[f"map_{column.name}"] = (kwargs.get("initial") or {}).get(column.name, "")

    def clean_preset_name(self) -> str:
        name = self.cleaned_data["preset_name"].strip()
        if name == shopify.PRESET or (name and ImportPreset.objects.filter(name=name).exists()):
            raise forms.ValidationError(_("A preset of this name exists: choose another name."))
        return name

    def clean(self):
        data = super().clean()
        seen: dict[str, str] = {}
        for column in self.spec.columns:
            heading = data.get(f"map_{column.name}", "")
            if column.required and not heading:
                self.add_error(f"map_{column.name}", _("required: pick the file's column that holds it"))
            if heading and heading in seen:
                self.add_error(f"map_{column.name}", _("the column “%(heading)s” is already %(field)s") % {"heading": heading, "field": seen[heading]})
            elif heading:
                seen[heading] = column.name
        return data

    def mapping(self) -> dict[str, str]:
        return {column.name: self.cleaned_data[f"map_{column.name}"] for column in self.spec.columns if self.cleaned_data.get(f"map_{column.name}")}


def _index(headings: list[str], heading: str | None) -> int | None:
    return headings.index(heading) if heading and heading in headings else None


def columns_help(kind: str) -> list[tuple[str, str, bool]]:
    return [(column.name, column.heading, column.required) for column in SPECS[kind].columns]


class ImportButtonMixin:
    """Adds an "Import" button to a changelist, next to export."""

    import_kind: str = ""
    change_list_template = "admin/crm/change_list_import_export.html"

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if may_import(request, self.import_kind):
            extra_context["crm_import_url"] = reverse("admin:crm_importjob_add") + f"?kind={self.import_kind}"
        return super().changelist_view(request, extra_context)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("original_name", "kind", "status", "total_rows", "error_rows", "uploaded_by", "created_at")
    list_filter = ("kind", "status")
    list_select_related = ("uploaded_by",)
    ordering = ("-created_at",)
    show_facets = admin.ShowFacets.NEVER

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        # Error rows quote the file's cells: only those who see every member see every upload.
        if sees_all_members(request.user):
            return queryset
        return queryset.filter(uploaded_by=request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return any(may_import(request, kind) for kind in TARGET_MODELS)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_add_permission(request) or super().has_view_permission(request, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:job_id>/progress/", view(self.progress_view), name="crm_importjob_progress"),
            path("<int:job_id>/errors.csv", view(self.errors_csv_view), name="crm_importjob_errors"),
            path("<int:job_id>/", view(self.detail_view), name="crm_importjob_detail"),
            path("<int:job_id>/columns/", view(self.columns_view), name="crm_importjob_columns"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():  # "abc", "1'": the admin's usual "does not exist" answer
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        return HttpResponseRedirect(reverse("admin:crm_importjob_detail", args=[object_id]))

    def _job(self, request, job_id: int, *, acting: bool = False) -> ImportJob:
        """The job, if the user may read it (or, acting, confirm or cancel it)."""
        job = get_object_or_404(self.get_queryset(request), pk=job_id)
        allowed = may_import(request, job.kind) if acting else (
            may_import(request, job.kind) or request.user.has_perm("crm.view_importjob")
        )
        if not allowed:
            raise PermissionDenied
        return job

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        kind = request.GET.get("kind", ImportKind.MEMBERS)
        kind = kind if kind in SPECS else ImportKind.MEMBERS
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                kind = form.cleaned_data["kind"]
                if not may_import(request, kind):
                    raise PermissionDenied
                upload = form.cleaned_data["file"]
                job = import_job_create(kind=kind, upload=upload, user=request.user, preset=form.cleaned_data["preset"])
                import_job_start(job=job, mode=ImportMode.DRY_RUN, enqueue=self._enqueue(upload.size))
                return HttpResponseRedirect(reverse("admin:crm_importjob_detail", args=[job.pk]))
        else:
            form = UploadForm(initial={"kind": kind})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import a file"),
            "opts": self.model._meta,
            "form": form,
            "kinds": [(value, label, columns_help(value)) for value, label in ImportKind.choices],
            "selected_kind": kind,
            "max_mb": settings.CRM_IMPORT_MAX_UPLOAD_BYTES // 2**20,
        }
        return TemplateResponse(request, "admin/crm/importjob/upload.html", context)

    @staticmethod
    def _enqueue(size: int):
        """A big file goes to a worker (after the commit), a small one is imported in the request."""
        if not settings.CRM_IMPORT_RUN_INLINE and size > settings.CRM_IMPORT_BACKGROUND_BYTES:
            return import_job_task.delay_on_commit
        return None

    def detail_view(self, request, job_id: int):
        job = self._job(request, job_id, acting=request.method == "POST")
        if request.method == "POST":
            return self._act(request, job)
        acting = may_import(request, job.kind)
        errors_page = Paginator(job.row_errors.all(), ERRORS_PER_PAGE).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "title": str(job),
            "opts": self.model._meta,
            "job": job,
            "errors_page": errors_page,
            "progress": import_job_progress(job.pk) if job.is_running else None,
            "can_confirm": acting and job.status == ImportStatus.VALIDATED and job.error_rows == 0 and job.valid_rows > 0,
            "can_import_valid": acting and job.status == ImportStatus.VALIDATED and job.error_rows > 0 and job.valid_rows > 0,
            "can_cancel": acting and job.status == ImportStatus.VALIDATED,
            "changelist_url": reverse(f"admin:crm_{TARGET_MODELS[job.kind]}_changelist"),
            "can_map": acting and job.status == ImportStatus.VALIDATED and job.preset != shopify.PRESET,
            # The engine reports a missing column on row 1 under the field's name (cells' errors start at row 2).
            "columns_missing": job.row_errors.filter(row_no=1, column__in=[column.name for column in SPECS[job.kind].columns if column.required]).exists(),
            # The nightly housekeeping deleted them (they quote the file's cells): say so where they were.
            "errors_deleted_after": settings.RETENTION_IMPORT_ERRORS_DAYS
            if job.error_rows and job.finished_at and not errors_page.paginator.count else None,
        }
        return TemplateResponse(request, "admin/crm/importjob/detail.html", context)

    def _act(self, request, job: ImportJob):
        action = request.POST.get("action")
        if job.status != ImportStatus.VALIDATED:
            messages.warning(request, _("This file is no longer waiting for confirmation."))
        elif action == "cancel":
            import_job_cancel(job=job)
            messages.info(request, _("Cancelled; the uploaded file was deleted and nothing was imported."))
        elif action in (ImportMode.ALL_OR_NOTHING, ImportMode.VALID_ONLY):
            if action == ImportMode.ALL_OR_NOTHING and (job.error_rows or job.row_errors.exists()):  # file-level errors count no row
                messages.error(request, _("The file has rows with errors: import the valid rows only, or cancel."))
            else:
                job = import_job_start(job=job, mode=action, enqueue=self._enqueue(job.file.size if job.file else 0))
                if job.status == ImportStatus.DONE:
                    messages.success(request, _("Imported."))
        return HttpResponseRedirect(reverse("admin:crm_importjob_detail", args=[job.pk]))

    def columns_view(self, request, job_id: int):
        """Map the file's columns to the fields (suggested from its headings), preview the
        first rows read that way, save the mapping as a named preset, and check the file again."""
        job = self._job(request, job_id, acting=True)
        if job.status != ImportStatus.VALIDATED or not job.file or job.preset == shopify.PRESET:
            messages.warning(request, _("This file is no longer waiting for confirmation."))
            return HttpResponseRedirect(reverse("admin:crm_importjob_detail", args=[job.pk]))
        spec = SPECS[job.kind]
        headings, samples = presets.file_sample(Path(job.file.path), job.original_name, spec)
        form = ColumnMappingForm(request.POST or None, spec=spec, headings=headings, initial=presets.suggest_mapping(spec, headings, job.mapping))
        mapping = form.initial
        if request.method == "POST" and form.is_valid():
            mapping = form.mapping()
            if "save" in request.POST:
                name = form.cleaned_data["preset_name"]
                if name:
                    ImportPreset.objects.create(name=name, kind=job.kind, mapping=mapping, created_by=request.user)
                ImportJob.objects.filter(pk=job.pk).update(mapping=mapping, preset=name)
                job.refresh_from_db()
                import_job_start(job=job, mode=ImportMode.DRY_RUN, enqueue=self._enqueue(job.file.size))
                messages.success(request, _("The file is checked again with these columns."))
                return HttpResponseRedirect(reverse("admin:crm_importjob_detail", args=[job.pk]))
        fields, rows = presets.preview_rows(spec, headings, samples, mapping)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Which column holds what"),
            "opts": self.model._meta,
            "job": job,
            "form": form,
            "rows": [(field, form[f"map_{field.name}"], [row[index] for row in samples] if (index := _index(headings, mapping.get(field.name))) is not None else [])
                     for field in spec.columns],
            "unused": [(heading, [row[index] for row in samples if index < len(row)]) for index, heading in enumerate(headings)
                       if heading and heading not in mapping.values()],
            "preview_fields": fields,
            "preview_rows": rows,
        }
        return TemplateResponse(request, "admin/crm/importjob/columns.html", context)

    def progress_view(self, request, job_id: int):
        job = self._job(request, job_id)
        return JsonResponse(
            {"status": job.status, "running": job.is_running, **import_job_progress(job.pk)},
        )

    def errors_csv_view(self, request, job_id: int):
        job = self._job(request, job_id)

        class Echo:
            def write(self, value: str) -> str:
                return value

        writer = csv.writer(Echo())

        def rows():
            yield "\ufeff"  # so that Excel reads the Chinese text as UTF-8
            yield writer.writerow([_("row"), _("column"), _("reason"), _("value")])
            # Keyset pages, not .iterator(): a server-side cursor held open while the file streams
            # cannot live behind a pooler in transaction pooling, and without one a million errors
            # would be read into memory at once.
            after, batch = (-1, 0), True
            while batch:
                batch = list(
                    job.row_errors.filter(Q(row_no__gt=after[0]) | Q(row_no=after[0], id__gt=after[1])).order_by("row_no", "id")[:2000]
                )
                for error in batch:
                    yield writer.writerow([error.row_no, error.column, error.message, neutralise_formula(error.value)])
                    after = (error.row_no, error.id)

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        name = Path(job.original_name).stem or "import"
        response["Content-Disposition"] = f'attachment; filename="errors-{job.pk}.csv"; filename*=UTF-8\'\'{quote(name)}-errors.csv'
        return response



@admin.register(ImportPreset)
class ImportPresetAdmin(admin.ModelAdmin):
    """Saved on the check page; here they are read, renamed or deleted."""

    list_display = ("name", "kind", "created_by", "created_at")
    list_filter = ("kind",)
    readonly_fields = ("kind", "created_by", "created_at")
    fields = ("name", "kind", "mapping", "created_by", "created_at")

    def has_add_permission(self, request) -> bool:
        return False
