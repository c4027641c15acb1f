"""What our admin lists change in Django's ChangeList, as mixins put before its class.

Every admin list answers a bad date-hierarchy value as it answers any bad filter value.

Django's ChangeList.get_filters builds the range of `?<field>__year=` itself
and lets two values escape as server errors: a year too large for a C long
(OverflowError) and 9999, whose next year does not exist (a ValueError outside
its try). Here both become IncorrectLookupParameters, the admin's usual "?e=1"
answer. harden() gives this to every registered admin with a date hierarchy,
ours and third-party ones (axes' logs) alike, whatever ChangeList it uses.

A big table's list sorts only by the columns it offers, with ties in the sort's direction
(ServedSortsChangeList, which crm.admin_base.BigTableAdmin uses)."""

from __future__ import annotations

import functools

from django.contrib.admin.options import IncorrectLookupParameters


class _SafeDates:
    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as error:
            raise IncorrectLookupParameters(error) from error


@functools.cache
def with_mixin(mixin: type, changelist_class: type) -> type:
    """changelist_class with mixin before it, made once per pair."""
    return type(changelist_class.__name__, (mixin, changelist_class), {})


def harden(site) -> None:
    for model_admin in site._registry.values():
        if model_admin.date_hierarchy:
            model_admin.get_changelist = functools.partial(_changelist, model_admin.get_changelist)


def _changelist(get_changelist, request, **kwargs) -> type:
    return with_mixin(_SafeDates, get_changelist(request, **kwargs))


class ServedSortsChangeList:
    """A column left out of sortable_by is not sorted by a crafted ?o= either (Django only
    stops drawing its header as a link): the list keeps its default order instead. The
    primary key that breaks ties runs the same way as the sort, so that an index on
    (column, id) serves a sort either way: Django breaks ties by the admin's ordering or
    -pk, descending whatever the direction of the click."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)

    def _get_deterministic_ordering(self, ordering):
        ordering = super()._get_deterministic_ordering(ordering)
        first = ordering[0] if ordering else None
        if isinstance(first, str) and not first.startswith("-"):
            descending_pk = {"-pk", f"-{self.lookup_opts.pk.name}"}  # the admin's own ordering, or Django's tie-break
            ordering = [part[1:] if isinstance(part, str) and part in descending_pk else part for part in ordering]
        return ordering
