"""Every admin list answers a bad date-hierarchy value as it answers any bad filter value.

Django's ChangeList.get_filters builds the range of `?<field>__year=` itself
and lets two values escape as server errors: a year too large for a C long
(OverflowError) and 9999, whose next year does not exist (a ValueError outside
its try). Here both become IncorrectLookupParameters, the admin's usual "?e=1"
answer. harden() gives this to every registered admin with a date hierarchy,
ours and third-party ones (axes' logs) alike, whatever ChangeList it uses."""

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
def _safe(changelist_class: type) -> type:
    return type(changelist_class.__name__, (_SafeDates, changelist_class), {})


def harden(site) -> None:
    for model_admin in site._registry.values():
        if model_admin.date_hierarchy:
            model_admin.get_changelist = functools.partial(_changelist, model_admin.get_changelist)


def _changelist(get_changelist, request, **kwargs) -> type:
    return _safe(get_changelist(request, **kwargs))
