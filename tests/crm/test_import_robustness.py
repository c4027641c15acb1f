"""Whatever a file holds, an import answers with row errors, never a crash,
and writes nothing unless every row was valid (or the user chose valid rows)."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.importing.engine import run_import
from crm.importing.specs import SPECS
from crm.models import Member, Order

pytestmark = pytest.mark.django_db

HEADINGS = {
    "members": ["external_id", "name", "mobile", "gender", "birthday", "registered_at", "community", "tags", "consent_sms"],
    "orders": ["order_no", "member_external_id", "ordered_at", "amount", "status", "channel", "coupon_code"],
}
cell = st.one_of(
    st.text(alphabet=string.printable + "张丽¥，；|=+-@\u3000", max_size=20),
    st.sampled_from(["", "M1", "13800138000", "2025-05-01", "2025/13/40", "-1", "1e9", "=cmd|' /C calc'!A0", "女", "1", "paid"]),
)


def csv_text(rows, delimiter):
    def quote(value):
        return '"' + value.replace('"', '""') + '"'

    return "\n".join(delimiter.join(quote(v) for v in row) for row in rows) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["members", "orders"]),
    drop=st.integers(min_value=0, max_value=3),
    rows=st.lists(st.lists(cell, min_size=0, max_size=10), min_size=0, max_size=8),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
def test_any_table_is_answered_with_row_errors_and_no_partial_write(tmp_path, kind, drop, rows, delimiter, encoding):
    headings = HEADINGS[kind][drop:]
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(csv_text([headings, *rows], delimiter).encode(encoding, errors="replace"))
    before = (Member.objects.count(), Order.objects.count())
    outcome = run_import(SPECS[kind], path, mode="all")
    for error in outcome.errors:
        assert error.row_no >= 1 and error.message
    if outcome.errors.count:
        assert not outcome.committed
        assert (Member.objects.count(), Order.objects.count()) == before
    outcome.errors.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), name=st.sampled_from(["x.csv", "x.xlsx", "x.txt"]))
def test_any_bytes_are_refused_cleanly(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    outcome = run_import(SPECS["orders"], path, mode="all")
    assert not Order.objects.exists()
    if not outcome.committed:
        assert outcome.errors.count or outcome.total_rows == 0
