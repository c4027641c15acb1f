"""Loading many rows fast: COPY on PostgreSQL, executemany on SQLite."""

# SQL here is assembled from table and column names defined in code (marked
# "nosec B608" for bandit); every value from a file or a user travels as a
# query parameter or through COPY, never inside the SQL text.

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from django.core.management.color import no_style
from django.db import connection

SQLITE_BATCH = 10_000
# Rows a bulk write (an import, a launch) may add before it refreshes the planner's statistics
# itself: autovacuum analyzes a grown table only a minute or more later.
ANALYZE_AFTER_ROWS = 10_000


def bigint_array(ids: Iterable[int]) -> str:
    """Ids as one PostgreSQL array literal ('{1,2,3}'), for a `%s::bigint[]`
    parameter: the driver adapts a Python list by inspecting every item, about
    a millisecond per thousand ids, several times per batch of a fan-out."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def sql_in(cursor, ids: Sequence[int]) -> tuple[str, list]:
    """A membership test for many ids: `= ANY(%s::bigint[])` with one array parameter on
    PostgreSQL (no per-id placeholder for the driver to split), `IN (…)` elsewhere."""
    if cursor.db.vendor == "postgresql":
        return "= ANY(%s::bigint[])", [bigint_array(ids)]
    return f"IN ({', '.join(['%s'] * len(ids))})", list(ids)


def ids_in(ids: Sequence[int]):
    """The right-hand side of an ORM `field__in=` for many ids: on PostgreSQL a
    subquery over one array parameter, instead of a placeholder per id that
    Django compiles and the driver splits (a tenth of a second per thousand)."""
    from django.db.models.expressions import RawSQL

    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [bigint_array(ids)])  # nosec B611 - one parameter, fixed SQL
    return list(ids)


def sql_values(cursor, rows: Sequence[tuple], types: Sequence[str]) -> tuple[str, list]:
    """A table of rows to join against, its columns named column1, column2, …: one
    array parameter per column unnested on PostgreSQL (a thousand rows are three
    parameters, not three thousand placeholders for the driver to split), VALUES elsewhere."""
    if cursor.db.vendor == "postgresql":
        columns = ", ".join(f"column{n}" for n in range(1, len(types) + 1))
        arrays = ", ".join(f"%s::{sql_type}[]" for sql_type in types)
        params = [bigint_array(column) if sql_type == "bigint" else list(column) for column, sql_type in zip(zip(*rows), types)]
        return f"(SELECT * FROM unnest({arrays}) AS u({columns}))", params or [[] for _ in types]  # nosec B608 - SQL types and column names from code
    row_sql = "(" + ", ".join(["%s"] * len(types)) + ")"
    return f"(VALUES {', '.join([row_sql] * len(rows))})", [value for row in rows for value in row]


def load_rows(table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    count = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            return count
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"  # nosec B608
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= SQLITE_BATCH:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


@contextmanager
def secondary_indexes_dropped(tables: Sequence[str]) -> Iterator[None]:
    """On PostgreSQL, drop the tables' secondary indexes and constraints for a big
    load and build them again afterwards (much faster than maintaining them row by
    row). Run inside a transaction: a failed load rolls the drops back too."""
    if connection.vendor != "postgresql":
        yield
        return
    restore: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        # Deferred foreign-key checks still pending would block ALTER TABLE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in tables:
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('u', 'f', 'c')",
                [table],
            )
            for name, definition, kind in cursor.fetchall():
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                # Unique constraints first (they are indexes), foreign keys last.
                restore.append((0 if kind == "u" else 2, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.conrelid = %s::regclass)",
                [table, table],
            )
            for name, definition in cursor.fetchall():
                cursor.execute(f'DROP INDEX "{name}"')
                restore.append((1, definition))
    yield
    with connection.cursor() as cursor:
        for _order, statement in sorted(restore, key=lambda item: item[0]):
            cursor.execute(statement)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def reset_sequences(models: Sequence) -> None:
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(statement)


def analyze_on_sqlite(tables: Sequence[str]) -> None:
    """After a full run rewrote these tables: SQLite gathers no planner statistics by itself
    (PostgreSQL's autovacuum does), and without them it read the points ledger's admin list
    of 20,000 members by scanning the members and sorting (0.7 s, 0.5 ms with them)."""
    if connection.vendor == "sqlite":
        analyze(tables)


def analyze(tables: Sequence[str]) -> None:
    """Planner statistics (and on PostgreSQL the visibility map, so that index-only
    scans work on freshly loaded tables; VACUUM cannot run inside a transaction)."""
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"{command} {table}")
