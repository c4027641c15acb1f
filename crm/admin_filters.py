"""Shows a django-filter FilterSet as one box in the admin changelist sidebar."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class FilterSetListFilter(admin.ListFilter):
    """Subclass with filterset_class set; the admin pops its parameters from the query string."""

    filterset_class = None
    title = _("filter")
    template = "admin/crm/filterset_filter.html"

    def __init__(self, request, params, model, model_admin) -> None:
        super().__init__(request, params, model, model_admin)
        names = self.expected_parameters()
        data = {}
        for name in names:
            if name in params:
                value = params.pop(name)
                data[name] = value[-1] if isinstance(value, list) else value
        self.used_parameters = data
        self.filterset = self.filterset_class(data or None, request=request)
        self.other_parameters = [
            (key, value) for key, values in request.GET.lists() if key not in names for value in values
            if key != "p"
        ]

    def expected_parameters(self) -> list[str]:
        form = self.filterset_class().form
        names = []
        for name, field in form.fields.items():
            widget = field.widget
            if hasattr(widget, "widgets"):
                names.extend(f"{name}_{suffix}" if suffix else name for suffix in widget.suffixes)
            else:
                names.append(name)
        return names

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        return []

    def queryset(self, request, queryset):
        if not self.used_parameters:
            return queryset
        self.filterset.queryset = queryset
        # A field with a bad value is skipped and its error shown beside it;
        # the others still filter.
        self.filterset.is_valid()
        return self.filterset.filter_queryset(queryset)


class FilterSetMediaMixin:
    """Adds the media of the sidebar FilterSets' widgets (autocomplete) to a changelist."""

    @property
    def media(self):
        media = super().media
        for list_filter in self.list_filter:
            if isinstance(list_filter, type) and issubclass(list_filter, FilterSetListFilter):
                media += list_filter.filterset_class().form.media
        return media
