"""import_* and seed_demo from the command line."""

import datetime as dt
import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django.db.models import Sum

from crm.models import Community, EngagementEvent, Member, Order, OrderLine

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, out.getvalue(), err.getvalue()


def test_import_members_prints_every_bad_row_and_exits_non_zero(write_file):
    path = write_file("m.csv", "external_id,mobile,gender\nM1,13800138000,F\nM2,123,F\nM3,13700137000,Z\n")
    code, out, err = run("import_members", str(path))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("row 3, mobile") and "(value: 123)" in lines[0]
    assert lines[1].startswith("row 4, gender") and "(value: Z)" in lines[1]
    assert "Nothing was written" in out and not Member.objects.exists()


def test_import_then_reimport_is_a_no_op(write_file):
    members = write_file("m.csv", "external_id,name\nM1,张丽\n")
    orders = write_file("o.csv", "order_no,member_external_id,ordered_at,amount\nSO1,M1,2025-05-01,10\n")
    lines = write_file("l.csv", "order_no,sku,product_name,category,quantity,unit_price\nSO1,SKU1,土鸡蛋,生鲜,1,10\n")
    events = write_file("e.csv", "member_external_id,kind,occurred_at\nM1,share,2025-05-02\n")
    for command, path in (("import_members", members), ("import_orders", orders), ("import_order_lines", lines), ("import_events", events)):
        code, out, _ = run(command, str(path))
        assert code == 0 and "new 1" in out, out
        code, out, _ = run(command, str(path))
        assert code == 0 and "new 0, changed 0, unchanged 1" in out, out
    assert (Member.objects.count(), Order.objects.count(), OrderLine.objects.count(), EngagementEvent.objects.count()) == (1, 1, 1, 1)


def test_a_committed_import_is_announced_once_and_audited(write_file):
    from crm.importing.jobs import import_committed
    from crm.models import AuditEvent

    heard = []

    def receiver(sender, kind, job, **kwargs):
        heard.append(kind)

    import_committed.connect(receiver)
    try:
        path = write_file("m.csv", "external_id\nM1\n")
        run("import_members", str(path))
        run("import_members", str(path), "--dry-run")
    finally:
        import_committed.disconnect(receiver)
    assert heard == ["members"]
    assert AuditEvent.objects.get(action="import").summary == "members: m.csv (command line)"


def test_dry_run_and_valid_only(write_file):
    path = write_file("m.csv", "external_id,mobile\nM1,13800138000\nM2,1\n")
    code, out, _ = run("import_members", str(path), "--dry-run")
    assert code == 1 and "Dry run" in out and not Member.objects.exists()
    code, out, _ = run("import_members", str(path), "--valid-only")
    assert code == 1 and "Imported" in out and Member.objects.count() == 1


def test_a_missing_file_is_an_error():
    code, _, _ = run("import_orders", "/no/such/file.csv")
    assert code == 1


def fingerprint():
    digest = hashlib.sha256()
    for row in Order.objects.order_by("order_no").values_list("order_no", "member__external_id", "ordered_at", "amount", "status"):
        digest.update(repr(row).encode())
    for row in Member.objects.order_by("external_id").values_list("external_id", "name", "mobile", "registered_at", "community__name"):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def test_seed_demo_is_deterministic_and_realistic():
    run("seed_demo", "--members", "300", "--seed", "7", "--as-of", "2026-06-30")
    first = fingerprint()
    assert Member.objects.count() == 300 and Community.objects.count() == 3
    orders = Order.objects.count()
    assert 3_000 < orders < 9_000  # about 20 orders a member over 18 months
    # Every order's amount is the sum of its lines (summed here with Decimal, not SQLite's floats).
    totals = {}
    for order_id, price, quantity in OrderLine.objects.values_list("order_id", "unit_price", "quantity"):
        totals[order_id] = totals.get(order_id, 0) + price * quantity
    assert all(totals[order_id] == amount for order_id, amount in Order.objects.values_list("id", "amount"))
    # Some never ordered, some stopped long ago, some share a lot.
    assert Member.objects.filter(orders__isnull=True).exists()
    # Of the newly registered (30 days), some placed a first order: the dashboard's conversion is not nil.
    recent = Member.objects.filter(registered_at__gte=dt.datetime(2026, 5, 31, tzinfo=dt.timezone.utc))
    converted = recent.filter(orders__isnull=False).distinct().count()
    assert 0.2 < converted / recent.count() < 0.6
    # A woman has a woman's given name, a man a man's: the templates address them from gender (王阿姨, 王叔).
    from crm.demo import GIVEN, GIVEN_FEMALE

    for name, gender in Member.objects.values_list("name", "gender"):
        assert set(name[1:]) <= set(GIVEN[:GIVEN_FEMALE] if gender == "F" else GIVEN[GIVEN_FEMALE:]), (name, gender)
    assert EngagementEvent.objects.values("member").annotate(n=Sum("count")).filter(n__gte=60).exists()
    code, out, _ = run("seed_demo", "--members", "300", "--seed", "7", "--as-of", "2026-06-30")
    assert "nothing seeded" in out and fingerprint() == first
    run("seed_demo", "--members", "300", "--seed", "7", "--as-of", "2026-06-30", "--reset")
    assert fingerprint() == first
    run("seed_demo", "--members", "300", "--seed", "8", "--as-of", "2026-06-30", "--reset")
    assert fingerprint() != first
