"""An independent reading of DOMAIN.md, to hold the product's figures against.

Random shop data (members, orders some refunded and some ¥0, with times on
both sides of midnight in Beijing, and engagement events), and a plain reading
of the domain's rules, written without the product's code, of what each
member's row must say on a day:

- R, F, M: calendar days in Asia/Shanghai, refunded orders left out, the
  365-day window ending on the as-of day (that day and the 364 before it);
- the tier: the ladder's shipped defaults, from the top;
- growth value: registration 10, the first paid order 50, every later paid
  order 100, each share 30 and each piece of user content 200 (times its count);
- points: the floor of each paid order's yuan, pending until the order's day
  + 7, expired after the end of the year after the order's;
- the circles with a rule in days: 沉睡 (R > 30 with an earlier paid order),
  注册7天未下单 (registered 7 or more days before, no paid order), and the
  lifecycle circles' shipped defaults: 低频购买 (ordered, fewer than 2 orders a
  month over the window: F < 24) and 高价值流失 (average order value in the
  window at least ¥150, no order in the last 30 days: the as-of day and the 29
  before it, R >= 30).
"""

import csv
import datetime as dt
import math
import random
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

from django.core.management import call_command

TIER_DAY = dt.date(2026, 6, 15)
# The loyalty columns are counted to any --as-of day: across a year's end (points of 2024 expire
# at the end of 2025) and a return window's.
LOYALTY_DAYS = [dt.date(2025, 12, 31), dt.date(2026, 1, 1), dt.date(2026, 1, 8), TIER_DAY]
LAST = dt.datetime(2026, 11, 30, 12, 0)
CIRCLES = ["沉睡", "注册7天未下单", "低频购买", "高价值流失"]


def shop_files(chance: random.Random):
    members, orders, events = [], [], []
    for n in range(60):
        external_id = f"D{n:03d}"
        registered = dt.datetime(2024, 3, 1) + dt.timedelta(days=chance.randrange(900), minutes=chance.randrange(1440))
        members.append({"external_id": external_id, "name": f"会员{n}", "registered_at": f"{registered:%Y-%m-%d %H:%M:%S}"})
        heavy = chance.random() < 0.3
        for k in range(chance.choice([0, 1, 2, 3, 5, 8, 14, 20])):
            day = registered.date() + dt.timedelta(days=chance.randrange(max((LAST.date() - registered.date()).days, 1)))
            # Beijing times at both ends of a day: 00:00:xx and 23:59:xx count to different days.
            at = dt.datetime.combine(day, dt.time(chance.choice([0, 0, 9, 12, 23, 23]), chance.choice([0, 5, 59]), chance.choice([0, 1, 59])))
            if at > LAST:
                continue
            amount = chance.choice([Decimal("0"), Decimal("9.90"), Decimal("99.99"), Decimal("1000"), Decimal("1999.50"),
                                    Decimal(chance.randrange(1, 3000)) + Decimal("0.49")])
            orders.append({
                "order_no": f"SO-{external_id}-{k}", "member_external_id": external_id, "ordered_at": f"{at:%Y-%m-%d %H:%M:%S}",
                "amount": str(amount * 4 if heavy else amount), "refunded": "1" if chance.random() < 0.12 else "0",
            })
        for k in range(chance.choice([0, 0, 1, 3])):
            at = registered + dt.timedelta(days=chance.randrange(200), hours=k)
            if at <= LAST:
                events.append({"member_external_id": external_id, "kind": chance.choice(["share", "ugc", "invite", "group_message"]),
                               "occurred_at": f"{at:%Y-%m-%d %H:%M:%S}", "count": str(chance.randint(1, 3))})
    # The window's and the return window's edges, exactly.
    members.append({"external_id": "EDGE", "name": "边界", "registered_at": "2024-01-01 08:00:00"})
    for k, at in enumerate([
        dt.datetime.combine(TIER_DAY - dt.timedelta(days=365), dt.time(23, 59, 59)),  # one day before the window
        dt.datetime.combine(TIER_DAY - dt.timedelta(days=364), dt.time(0, 0, 1)),  # its first day
        dt.datetime.combine(TIER_DAY - dt.timedelta(days=7), dt.time(23, 59)),  # available from TIER_DAY
        dt.datetime.combine(TIER_DAY - dt.timedelta(days=6), dt.time(0, 1)),  # still pending on TIER_DAY
        dt.datetime.combine(TIER_DAY, dt.time(23, 59, 59)),  # the as-of day's last second: R 0
        dt.datetime(2024, 12, 31, 23, 59), dt.datetime(2025, 1, 1, 0, 0, 1),  # expire at the end of 2025 and of 2026
    ]):
        orders.append({"order_no": f"SO-EDGE-{k}", "member_external_id": "EDGE", "ordered_at": f"{at:%Y-%m-%d %H:%M:%S}",
                       "amount": "1234.56", "refunded": "0"})
    # The day rules' edges: R 30 and 31; registered 7 and 6 days before.
    for external_id, back, time in (("R30", 30, dt.time(23, 59)), ("R31", 31, dt.time(0, 0, 1))):
        members.append({"external_id": external_id, "name": external_id, "registered_at": "2025-01-01 10:00:00"})
        orders.append({"order_no": f"SO-{external_id}", "member_external_id": external_id, "refunded": "0", "amount": "88",
                       "ordered_at": f"{dt.datetime.combine(TIER_DAY - dt.timedelta(days=back), time):%Y-%m-%d %H:%M:%S}"})
    for external_id, back, time in (("NEW7", 7, dt.time(23, 59)), ("NEW6", 6, dt.time(0, 1))):
        at = dt.datetime.combine(TIER_DAY - dt.timedelta(days=back), time)
        members.append({"external_id": external_id, "name": external_id, "registered_at": f"{at:%Y-%m-%d %H:%M:%S}"})
    # The lifecycle circles' edges: ¥150.00 on average 30 and 29 days back, ¥149.99 40 days back;
    # 24 and 23 orders in the window.
    for external_id, back, amount in (("L30", 30, "150.00"), ("L29", 29, "150.00"), ("L149", 40, "149.99")):
        members.append({"external_id": external_id, "name": external_id, "registered_at": "2025-01-01 10:00:00"})
        orders.append({"order_no": f"SO-{external_id}", "member_external_id": external_id, "refunded": "0", "amount": amount,
                       "ordered_at": f"{dt.datetime.combine(TIER_DAY - dt.timedelta(days=back), dt.time(12)):%Y-%m-%d %H:%M:%S}"})
    for external_id, count in (("F24", 24), ("F23", 23)):
        members.append({"external_id": external_id, "name": external_id, "registered_at": "2025-01-01 10:00:00"})
        for k in range(count):
            at = dt.datetime.combine(TIER_DAY - dt.timedelta(days=10 + 14 * k), dt.time(12))
            orders.append({"order_no": f"SO-{external_id}-{k}", "member_external_id": external_id, "refunded": "0", "amount": "10", "ordered_at": f"{at:%Y-%m-%d %H:%M:%S}"})
    return members, orders, events


def expected(day: dt.date, members, orders, events) -> dict[str, dict[str, str]]:
    """Each member who had joined by the day (registered, or ordered) as DOMAIN.md reads."""
    when = lambda text: dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: E731 - Beijing times, as written
    rows = {}
    for member in members:
        mine = [o for o in orders if o["member_external_id"] == member["external_id"] and o["refunded"] == "0" and when(o["ordered_at"]).date() <= day]
        if when(member["registered_at"]).date() > day and not mine:
            continue
        days = [when(o["ordered_at"]).date() for o in mine]
        recency = (day - max(days)).days if days else None
        window = [o for o in mine if (day - when(o["ordered_at"]).date()).days <= 364]
        f, m = len(window), sum((Decimal(o["amount"]) for o in window), Decimal("0"))
        if recency is not None and recency <= 30 and f > 12 and m > 20000:
            tier = "S"
        elif recency is not None and recency <= 60 and f > 6 and m >= 5000:
            tier = "A"
        elif recency is not None and recency <= 90 and f > 2 and m >= 1000:
            tier = "B"
        else:
            tier = "C"
        growth = (10 if when(member["registered_at"]).date() <= day else 0) + (50 + 100 * (len(mine) - 1) if mine else 0)
        for event in events:
            if event["member_external_id"] == member["external_id"] and when(event["occurred_at"]).date() <= day:
                growth += {"share": 30, "ugc": 200}.get(event["kind"], 0) * int(event["count"])
        available = pending = 0
        for order in mine:
            ordered, points = when(order["ordered_at"]).date(), math.floor(Decimal(order["amount"]))
            if day < ordered + dt.timedelta(days=7):
                pending += points
            elif day.year <= ordered.year + 1:
                available += points
        dormant = recency is not None and recency > 30
        unconverted = not mine and (day - when(member["registered_at"]).date()).days >= 7
        low_frequency = bool(mine) and f < 24
        lapsed = recency is not None and recency >= 30 and f > 0 and (m / f).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) >= 150
        rows[member["external_id"]] = {
            "recency_days": "" if recency is None else str(recency), "orders_365": str(f), "spend_365": f"{m:.2f}", "tier": tier,
            "growth_value": str(growth), "points_available": str(available), "points_pending": str(pending),
            "沉睡": str(dormant), "注册7天未下单": str(unconverted), "低频购买": str(low_frequency), "高价值流失": str(lapsed),
        }
    return rows


def write(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def exported(tmp_path, day: dt.date) -> dict[str, dict[str, str]]:
    target = tmp_path / f"metrics-{day}.csv"
    call_command("export_member_metrics", "--as-of", day.isoformat(), str(target), stdout=StringIO(), stderr=StringIO())
    with target.open(encoding="utf-8") as handle:
        rows = {row["external_id"]: row for row in csv.DictReader(handle)}
    for row in rows.values():
        row.update({name: str(name in row["circles"].split("|")) for name in CIRCLES})
    return rows


def differences(want: dict, got: dict, columns) -> dict:
    out = {}
    for external_id in want.keys() | got.keys():
        mine, theirs = want.get(external_id, {}), got.get(external_id, {})
        wrong = {c: (mine.get(c), theirs.get(c)) for c in columns if mine.get(c) != theirs.get(c)}
        if wrong:
            out[external_id] = wrong
    return out
