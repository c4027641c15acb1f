"""Growth value and points per member as of a day, for export_member_metrics.

"As of day D" counts the entries whose business time falls on or before D
(Asia/Shanghai), the points available by D's end as available, the rest as
pending, and takes off what had expired by D's end even where the expiry
entry is not written yet (the expiry task runs after midnight)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection

from segments.export_columns import ColumnProvider
from segments.days import local_midnight


def as_of_values(member_ids: Sequence[int], as_of: dt.date) -> dict[int, tuple]:
    if not member_ids:
        return {}
    end = local_midnight(as_of + dt.timedelta(days=1))
    placeholders = ", ".join(["%s"] * len(member_ids))
    values: dict[int, list[int]] = {member_id: [0, 0, 0] for member_id in member_ids}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT member_id, SUM(amount) FROM loyalty_growthentry WHERE member_id IN ({placeholders}) AND occurred_at < %s GROUP BY member_id",  # nosec B608
            [*member_ids, end],
        )
        for member_id, growth in cursor.fetchall():
            values[member_id][0] = int(growth)
        cursor.execute(
            f"""SELECT member_id,
                       SUM(CASE WHEN available_at < %s THEN amount ELSE 0 END),
                       SUM(CASE WHEN available_at >= %s THEN amount ELSE 0 END),
                       SUM(CASE WHEN expires_at < %s OR expires_at IS NULL THEN amount ELSE 0 END)
                  FROM loyalty_pointsentry WHERE member_id IN ({placeholders}) AND occurred_at < %s GROUP BY member_id""",  # nosec B608
            [end, end, end, *member_ids, end],
        )
        for member_id, available, pending, left_to_expire in cursor.fetchall():
            values[member_id][1] = int(available) - max(0, int(left_to_expire))
            values[member_id][2] = int(pending)
    return {member_id: tuple(row) for member_id, row in values.items()}


METRICS_COLUMNS = ColumnProvider(headers=("growth_value", "points_available", "points_pending"), values=as_of_values)
