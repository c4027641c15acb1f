"""A paginator that never counts a million rows on every page view.

Django's admin runs COUNT(*) for every changelist page (ticket #8408). On
PostgreSQL an unfiltered list takes the planner's row estimate (pg_class.
reltuples), and a filtered one is counted exactly only if that finishes
within COUNT_TIMEOUT_MS; otherwise the planner's estimate for the filtered
query is shown, marked as approximate. Counts come from the read replica when
there is one (crm.replica).

A deep page (page 200 of the members) is read in two steps: the ids of the
page first, which the database skips to through an index without joining
anything, then the page's rows with their joins. As one query, every row
skipped was joined with its metrics, tier and community first."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet
from django.utils.functional import cached_property

from crm.replica import read_alias, stale_reads

COUNT_TIMEOUT_MS = 50
# A table with fewer rows than this is always counted exactly.
SMALL_TABLE = 100_000
# A filtered list the planner expects to hold more rows than this is not counted.
COUNT_UP_TO = 20_000
# Pages starting this many rows in are read ids first (see above).
DEFERRED_FROM = 1_000


class EstimatedCountPaginator(Paginator):
    is_estimate = False

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if bottom < DEFERRED_FROM or not isinstance(self.object_list, QuerySet):
            return super().page(number)
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in self.object_list.filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet):
            with stale_reads():  # a count a few seconds old is fine: from the replica when there is one
                alias = read_alias()
            if alias != queryset.db:
                queryset = queryset.using(alias)
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return queryset.count()
        table_estimate = self._table_estimate(connection, queryset.model._meta.db_table)
        if table_estimate < SMALL_TABLE:
            return queryset.count()
        if not queryset.query.where:
            self.is_estimate = True
            return table_estimate
        estimate = self._planner_estimate(queryset)
        if estimate > COUNT_UP_TO:
            self.is_estimate = True
            return estimate
        try:
            with transaction.atomic(using=queryset.db), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {COUNT_TIMEOUT_MS}")
                return queryset.count()
        except DatabaseError:
            self.is_estimate = True
            return estimate

    @staticmethod
    def _planner_estimate(queryset) -> int:
        plan = json.loads(queryset.explain(format="json"))
        return int(plan[0]["Plan"]["Plan Rows"])

    @staticmethod
    def _table_estimate(connection, table: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
            row = cursor.fetchone()
        # -1 means never analysed.
        return max(int(row[0]), 0) if row else 0
