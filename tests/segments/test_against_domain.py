"""The exported figures against an independent reading of DOMAIN.md, on random files.

Members, orders and engagement events go in through the import commands as a
shop's files would; recompute_tiers and export_member_metrics run as staff run
them; every row is held against tests/domain_reference.py, which reads the
rules without the product's code."""

import random
from io import StringIO

import pytest
from django.core.management import call_command

from tests.domain_reference import CIRCLES, LOYALTY_DAYS, TIER_DAY, differences, expected, exported, shop_files, write

pytestmark = pytest.mark.django_db


def test_the_exported_figures_read_as_the_domain_says(tmp_path):
    members, orders, events = shop_files(random.Random(2026))
    for command, rows in (("import_members", members), ("import_orders", orders), ("import_events", events)):
        call_command(command, write(tmp_path / f"{command}.csv", rows), stdout=StringIO(), stderr=StringIO())
    call_command("recompute_tiers", "--as-of", TIER_DAY.isoformat(), stdout=StringIO(), stderr=StringIO())

    want = expected(TIER_DAY, members, orders, events)
    assert {row["tier"] for row in want.values()} >= {"A", "B", "C"} and len(want) > 40  # the files reach several rungs
    every = ["recency_days", "orders_365", "spend_365", "tier", "growth_value", "points_available", "points_pending", *CIRCLES]
    got = exported(tmp_path, TIER_DAY)
    assert {name: sum(row[name] == "True" for row in want.values()) > 0 for name in CIRCLES} == dict.fromkeys(CIRCLES, True)
    assert differences(want, got, every) == {}
    for day in LOYALTY_DAYS:
        want = expected(day, members, orders, events)
        got = {external_id: row for external_id, row in exported(tmp_path, day).items() if external_id in want}
        assert differences(want, got, ["growth_value", "points_available", "points_pending"]) == {}, day

    # The shop's next file marks some paid orders refunded (the first paid order of some members
    # among them): the figures, the tiers and both ledgers follow as if those orders never counted.
    chance = random.Random(7)
    first_paid = {}
    for order in sorted(orders, key=lambda o: o["ordered_at"]):
        if order["refunded"] == "0":
            first_paid.setdefault(order["member_external_id"], order)
    for order in orders:
        if order["refunded"] == "0" and chance.random() < 0.15:
            order["refunded"] = "1"
    taken_over = [o for o in first_paid.values() if o["refunded"] == "1"
                  and any(p["member_external_id"] == o["member_external_id"] and p["refunded"] == "0" for p in orders)]
    assert taken_over  # a later paid order takes the first-order award over
    call_command("import_orders", write(tmp_path / "refunds.csv", orders), stdout=StringIO(), stderr=StringIO())
    call_command("recompute_tiers", "--as-of", TIER_DAY.isoformat(), stdout=StringIO(), stderr=StringIO())
    assert differences(expected(TIER_DAY, members, orders, events), exported(tmp_path, TIER_DAY), every) == {}
