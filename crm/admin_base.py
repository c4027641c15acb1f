"""Admin building blocks for tables about members that grow to millions of rows."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import connections
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from import_export.admin import ExportMixin

from crm.admin_changelist import ServedSortsChangeList, with_mixin
from crm.admin_filters import FilterSetMediaMixin
from crm.audit import audit_record
from crm.models import AuditAction
from crm.paginator import EstimatedCountPaginator
from crm.replica import read_alias, stale_ok, stale_reads
from crm.scoping import scope_to_user, sees_many_members


class ScopedAdmin(admin.ModelAdmin):
    """Rows about members are limited to what the user may see (crm.scoping).
    member_path leads from the model to Member; None means not about members."""

    member_path: str | None = None

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        if self.member_path is None:
            return queryset
        return scope_to_user(queryset, request.user, self.member_path)

    def get_object(self, request, object_id, from_field=None):
        try:
            return super().get_object(request, object_id, from_field)
        except OverflowError:  # an id past 64 bits on a table keyed by its member ("9999…/change/"): does not exist
            return None

    def get_ordering(self, request):
        """For a user limited to a few communities, sort by an expression no index
        matches. Otherwise PostgreSQL walks the whole time index backwards looking
        for his rare rows: measured 1.0 s for a leader's orders among 19.6M,
        27 ms when it starts from his members instead (bench/admin_latency.py).
        An operator's tiers hold a large share of the base: the index serves him."""
        ordering = super().get_ordering(request)
        if self.member_path is None or sees_many_members(request.user):
            return ordering
        return [_unindexed(field) for field in ordering]


def _unindexed(field):
    if not isinstance(field, str):
        return field
    name = field.lstrip("-")
    expression = Coalesce(F(name), F(name))
    return expression.desc() if field.startswith("-") else expression.asc()


class AuditedExportMixin(ExportMixin):
    """Every export is written to the audit log with its row count and filters.
    Its rows may come from the replica (crm.replica); the audit line is written on the primary."""

    @stale_ok
    def export_action(self, request):
        return super().export_action(request)

    def export_admin_action(self, request, queryset):
        request.crm_reads_only = True  # a POST that writes only its audit line: no pin to the primary after it
        with stale_reads():
            return super().export_admin_action(request, queryset.using(read_alias()))

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        rows = queryset.count()
        audit_record(
            actor=request.user,
            action=AuditAction.EXPORT,
            summary=f"{self.model._meta.verbose_name_plural}: {rows}",
            detail={
                "model": self.model._meta.label_lower,
                "rows": rows,
                "format": file_format.get_title() if hasattr(file_format, "get_title") else str(file_format),
                "filters": dict(request.GET.lists()) | {"changelist": request.POST.get("changelist_filters", "")},
            },
            request=request,
        )
        return data


def _sorting_indexes(model) -> list[tuple[list[str], bool]]:
    """The key fields of each index an ORDER BY can read on the whole table (no condition, no
    expression, no operator class: a varchar_pattern_ops index serves LIKE 'x%', not a sort),
    and whether it is unique."""
    keys = []
    for index in model._meta.indexes:
        if index.fields and index.condition is None and not index.opclasses:
            keys.append(([name.lstrip("-") for name in index.fields], False))
    for constraint in model._meta.constraints:
        if getattr(constraint, "fields", None) and getattr(constraint, "condition", None) is None and not getattr(constraint, "opclasses", None):
            keys.append((list(constraint.fields), True))
    return keys


TABLE_ROWS_SECONDS = 300
_table_rows_kept: dict[tuple[str, str], tuple[float, int]] = {}


class BigTableAdmin(FilterSetMediaMixin, ScopedAdmin):
    """Defaults for tables that grow to millions of rows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def get_sortable_by(self, request):
        """Every column while the table is small; past settings.ADMIN_SORT_ANY_UP_TO rows, only the
        columns an index serves: one click on 金额 sorted all 19.7M orders (docs/performance.md)."""
        columns = super().get_sortable_by(request)
        if self._table_rows() <= settings.ADMIN_SORT_ANY_UP_TO:
            return columns
        return [column for column in columns if self._sort_served(column)]

    def get_changelist(self, request, **kwargs):
        return with_mixin(ServedSortsChangeList, super().get_changelist(request, **kwargs))

    def _sort_field(self, column):
        """The model field a column sorts by, or None (an expression, a join, no sort at all)."""
        if callable(column):
            return None
        try:
            field = self.model._meta.get_field(column)
        except FieldDoesNotExist:
            attribute = getattr(self, column, None) or getattr(self.model, column, None)
            order = getattr(attribute, "admin_order_field", None)
            if not isinstance(order, str) or "__" in order.lstrip("-"):
                return None
            field = self.model._meta.get_field(order.lstrip("-"))
        if field.is_relation and field.related_model._meta.ordering:
            return None  # sorted by the related table's own order, through a join
        return field

    def _sort_served(self, column) -> bool:
        """The field is unique, or an index has it as its first key and the primary key as its
        next: then ties come in order too. With the field alone as a key, rows equal in it (a day's
        orders imported at 00:00, one earning rule's 3M entries) were sorted whole for every page."""
        field = self._sort_field(column)
        if field is None:
            return False
        if field.primary_key or field.unique:
            return True
        pk = self.model._meta.pk.name
        return any(key[:2] == [field.name, pk] or key == [field.name] and unique for key, unique in _sorting_indexes(self.model))

    def _table_rows(self) -> int:
        """The planner's estimate on PostgreSQL (from the replica when there is one); elsewhere
        (the embedded SQLite of a small shop) the count, which its smallest index gives. Kept
        per process for TABLE_ROWS_SECONDS: a table crosses the limit over days, not requests."""
        with stale_reads():
            alias = read_alias()
        key = (alias, self.model._meta.db_table)
        kept = _table_rows_kept.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        connection = connections[alias]
        if connection.vendor == "postgresql":
            rows = EstimatedCountPaginator._table_estimate(connection, self.model._meta.db_table)
        else:
            rows = self.model._base_manager.using(alias).count()
        _table_rows_kept[key] = (time.monotonic() + TABLE_ROWS_SECONDS, rows)
        return rows

    def action_checkbox(self, obj):
        """Django's row checkbox, the same markup written directly: rendered through the
        form widget templates it cost 0.2–0.4 ms a row, a tenth of a list page's CPU."""
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">', ACTION_CHECKBOX_NAME, obj.pk, label)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that are proof (consent history, audit log): viewable, never edited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SingletonAdmin(admin.ModelAdmin):
    """The one row of a SingletonRow model: the menu entry opens it, nobody adds or deletes."""

    def has_add_permission(self, request) -> bool:
        # Never added here: opening it makes the row (current()). Asking whether it exists
        # cost every admin page a query per singleton, for its menu.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[self.model.current().pk]))
