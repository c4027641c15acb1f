"""A deterministic, realistic community data set for the quick start, the
tests and the benchmarks.

Members belong to archetypes (loyal big spenders, regulars, promo hunters,
occasional buyers, members who went dormant, new members who never ordered)
and influencers spread among them. Orders span 18 months before the as-of
date, at each member's usual hour, with lines from five categories and a
favourite category per member. The same (members, seed, as_of) always gives
the same rows: each chunk of members draws from its own seeded generator.

Generation is vectorised with numpy, one chunk of members at a time, so that
a million members and twenty million orders stream into the database with
flat memory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK_MEMBERS = 20_000
HISTORY_DAYS = 548  # 18 months
SECONDS_PER_DAY = 86_400
TZ_OFFSET_SECONDS = 8 * 3600  # Asia/Shanghai, no daylight saving since 1991

CATALOG: dict[str, list[tuple[str, int]]] = {
    # category: [(product name, price in fen)]
    "生鲜": [
        ("土鸡蛋30枚", 3980), ("有机菠菜500g", 890), ("丹东草莓1kg", 5980), ("鲜牛奶950ml", 1590),
        ("原味酸奶12杯", 3290), ("精品五花肉500g", 2890), ("鲜活基围虾500g", 4990), ("本地小番茄1kg", 1290),
        ("赣南脐橙5斤", 3990), ("散养土鸡1只", 8800), ("冰鲜三文鱼200g", 4590), ("时令青菜组合", 990),
    ],
    "日化": [
        ("洗衣液2kg", 3990), ("含氟牙膏3支", 2990), ("抽纸24包", 4590), ("洗洁精1.5kg", 1690),
        ("沐浴露750ml", 4290), ("洗发水500ml", 5490), ("厨房湿巾80抽", 1290), ("垃圾袋5卷", 990),
    ],
    "母婴": [
        ("婴儿纸尿裤L码", 12900), ("婴儿奶粉3段800g", 26800), ("婴儿湿巾10包", 3990), ("儿童牙膏", 2590),
        ("宝宝米粉", 6890), ("儿童洗护套装", 9900),
    ],
    "零食": [
        ("每日坚果30包", 8990), ("原味薯片", 790), ("全麦饼干", 1590), ("牛肉干200g", 3990),
        ("果冻礼盒", 2490), ("海苔脆片", 1290), ("黑巧克力", 2290), ("山楂条", 990),
    ],
    "粮油": [
        ("东北大米10kg", 6990), ("压榨花生油5L", 11990), ("高筋面粉5kg", 3290), ("杂粮组合2kg", 3990),
        ("挂面1kg", 890), ("生抽酱油1.9L", 2590), ("陈醋500ml", 990), ("小米2kg", 2890),
    ],
}
CATEGORIES = list(CATALOG)
PRODUCTS = [(category, name, price) for category in CATEGORIES for name, price in CATALOG[category]]
PRODUCT_CATEGORY = np.array([CATEGORIES.index(category) for category, _, _ in PRODUCTS])
PRODUCT_PRICE = np.array([price for _, _, price in PRODUCTS], dtype=np.int64)
PRODUCTS_BY_CATEGORY = [np.flatnonzero(PRODUCT_CATEGORY == index) for index in range(len(CATEGORIES))]

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘")
GIVEN = list("丽娟敏静秀英华芳燕红霞玲桂兰萍梅琴云洁伟强磊军勇杰涛明超刚平辉鹏")
GIVEN_FEMALE = GIVEN.index("伟")  # the characters before it are women's names, from it men's
TAGS = ["宝妈", "上班族", "退休", "健身", "养宠物", "学生家长", "素食"]
CHANNELS = ["小程序", "社群团购", "门店自提", "企微私聊"]
SOURCES = ["社群裂变", "门店扫码", "朋友推荐", "线上广告", "地推活动"]

# archetype: share of members, orders per month, basket size (extra units), promo share
ARCHETYPES = {
    "loyal": (0.08, 5.0, 2.2, 0.12),
    "regular": (0.30, 1.3, 1.0, 0.18),
    "promo": (0.30, 2.2, 0.3, 0.75),
    "occasional": (0.17, 0.3, 0.8, 0.25),
    "dormant": (0.10, 1.2, 1.0, 0.30),
    "new": (0.05, 0.0, 0.0, 0.0),
}
ARCHETYPE_NAMES = list(ARCHETYPES)
INFLUENCER_SHARE = 0.05
# Usual order hours: morning before work, lunch, evening after work.
HOUR_CHOICES = np.array([7, 8, 9, 12, 19, 20, 21, 22])
HOUR_WEIGHTS = np.array([0.12, 0.16, 0.08, 0.10, 0.14, 0.18, 0.14, 0.08])
NEIGHBOURHOODS = ["幸福里", "阳光花园", "锦绣江南", "翠湖苑", "金桂园", "滨江一品", "书香门第", "碧水湾", "枫林晚", "东方名城"]
CONSENT_RATES = {"sms": 0.72, "wecom": 0.85, "email": 0.08, "push": 0.35}


@dataclass
class Chunk:
    members: list[tuple]
    orders: list[tuple]
    lines: list[tuple]
    events: list[tuple]
    consents: list[tuple]
    member_tags: list[tuple]


def community_count(members: int) -> int:
    return max(3, min(2_000, members // 500))


def epoch_seconds(day: dt.date) -> int:
    """Midnight of day in Asia/Shanghai, as UTC epoch seconds."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()) - TZ_OFFSET_SECONDS


def generate(*, members: int, seed: int, as_of: dt.date, sqlite: bool) -> Iterator[Chunk]:
    """Yield the data set chunk by chunk; ids start at 1 in every table."""
    # The history ends the evening before the as-of date, so no order lies ahead of "now".
    end = epoch_seconds(as_of) - 1
    order_id = 1
    line_id = 1
    for start in range(0, members, CHUNK_MEMBERS):
        size = min(CHUNK_MEMBERS, members - start)
        rng = np.random.default_rng([seed, start // CHUNK_MEMBERS])
        chunk, order_id, line_id = _chunk(rng, start, size, members, end, order_id, line_id, sqlite)
        yield chunk


def _timestamps(seconds: np.ndarray, sqlite: bool) -> list[str]:
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    if sqlite:
        # Django's SQLite backend stores "YYYY-MM-DD HH:MM:SS" in UTC.
        return [value.replace("T", " ") for value in text.tolist()]
    return [value + "+00" for value in text.tolist()]


def _money(fen: np.ndarray) -> list[str]:
    return [f"{value // 100}.{value % 100:02d}" for value in fen.tolist()]


def _chunk(rng, start, size, total_members, end, order_id, line_id, sqlite):  # noqa: PLR0915 - one pass, kept together
    ids = np.arange(start + 1, start + size + 1)
    shares = np.array([ARCHETYPES[name][0] for name in ARCHETYPE_NAMES])
    archetype = rng.choice(len(ARCHETYPE_NAMES), size=size, p=shares / shares.sum())
    rate = np.array([ARCHETYPES[name][1] for name in ARCHETYPE_NAMES])[archetype] * rng.lognormal(0, 0.35, size)
    basket = np.array([ARCHETYPES[name][2] for name in ARCHETYPE_NAMES])[archetype] * rng.lognormal(0, 0.4, size)
    promo = np.array([ARCHETYPES[name][3] for name in ARCHETYPE_NAMES])[archetype]
    is_new = archetype == ARCHETYPE_NAMES.index("new")
    is_dormant = archetype == ARCHETYPE_NAMES.index("dormant")

    history_start = end - HISTORY_DAYS * SECONDS_PER_DAY
    registered = rng.integers(end - 24 * 30 * SECONDS_PER_DAY, end - 30 * SECONDS_PER_DAY, size)
    registered[is_new] = rng.integers(end - 30 * SECONDS_PER_DAY, end - 3600, is_new.sum())
    active_from = np.maximum(registered, history_start)
    active_to = np.full(size, end)
    active_to[is_dormant] = end - rng.integers(45, 300, is_dormant.sum()) * SECONDS_PER_DAY
    active_to = np.maximum(active_to, active_from + SECONDS_PER_DAY)
    months = (active_to - active_from) / (30 * SECONDS_PER_DAY)
    n_orders = rng.poisson(rate * months)
    n_orders[is_new] = 0
    # Of the members who registered in the last 30 days, about 40% have placed a first order (a few a
    # second): the dashboard's first-order conversion; the others are the worklist's "no order yet".
    converted = is_new & (rng.random(size) < 0.4)
    n_orders[converted] = 1 + (rng.random(int(converted.sum())) < 0.15)
    usual_hour = rng.choice(HOUR_CHOICES, size=size, p=HOUR_WEIGHTS)
    favourite = rng.integers(0, len(CATEGORIES), size)

    gender = np.where(rng.random(size) < 0.62, "F", "M")
    age = rng.integers(20, 72, size)
    birthday_days = (end // SECONDS_PER_DAY) - age * 365 - rng.integers(0, 365, size)
    birthdays = np.datetime_as_string(birthday_days.astype("datetime64[D]")).tolist()
    bands = np.select([age < 25, age < 35, age < 45, age < 55], ["18-24", "25-34", "35-44", "45-54"], "55+")
    community = (ids - 1) % community_count(total_members) + 1
    surname = rng.integers(0, len(SURNAMES), size)
    given = rng.integers(0, len(GIVEN), (size, 2))
    two_char = rng.random(size) < 0.6
    # A woman's name for a woman (王秀英 is addressed 王阿姨, not 王叔), drawn from the same numbers.
    given = np.where((gender == "F")[:, None], given % GIVEN_FEMALE, GIVEN_FEMALE + given % (len(GIVEN) - GIVEN_FEMALE))
    mobile_prefix = rng.choice(np.array([130, 133, 135, 136, 137, 138, 139, 150, 151, 158, 159, 176, 186, 188, 189]), size)
    mobile_rest = rng.integers(0, 100_000_000, size)
    household = rng.random((size, 4)) < np.array([0.12, 0.25, 0.35, 0.2])
    source = rng.integers(0, len(SOURCES), size)
    reg_text = _timestamps(registered, sqlite)
    members = []
    for i in range(size):
        name = SURNAMES[surname[i]] + GIVEN[given[i, 0]] + (GIVEN[given[i, 1]] if two_char[i] else "")
        members.append(
            (
                int(ids[i]),
                f"M{ids[i]:08d}",
                name,
                f"{mobile_prefix[i]}{mobile_rest[i]:08d}",
                "",
                str(gender[i]),
                birthdays[i],
                str(bands[i]),
                bool(household[i, 0]),
                bool(household[i, 1]),
                bool(household[i, 2]),
                bool(household[i, 3]),
                reg_text[i],
                SOURCES[source[i]],
                int(community[i]),
                False,
                None,
                reg_text[i],
            )
        )

    # Orders: uniform over each member's active span, at the usual hour.
    owner = np.repeat(np.arange(size), n_orders)
    count = owner.size
    span_days = ((active_to - active_from) // SECONDS_PER_DAY)[owner]
    day = (active_from[owner] // SECONDS_PER_DAY) + (rng.random(count) * np.maximum(span_days, 1)).astype(np.int64)
    hour = np.clip(usual_hour[owner] + rng.integers(-1, 2, count), 0, 23)
    # Local hour → UTC seconds.
    ordered = day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, count) - TZ_OFFSET_SECONDS
    ordered = np.clip(ordered, active_from[owner], end)
    order_ids = np.arange(order_id, order_id + count)

    lines_per_order = rng.choice([1, 2, 3], size=count, p=[0.5, 0.35, 0.15])
    line_order = np.repeat(np.arange(count), lines_per_order)
    line_rank = np.arange(line_order.size) - np.repeat(np.cumsum(lines_per_order) - lines_per_order, lines_per_order)
    line_member = owner[line_order]
    category = np.where(
        rng.random(line_order.size) < 0.55, favourite[line_member], rng.integers(0, len(CATEGORIES), line_order.size)
    )
    picked = rng.integers(0, 1_000_000, line_order.size)
    category_sizes = np.array([len(products) for products in PRODUCTS_BY_CATEGORY])
    category_offsets = np.array([products[0] for products in PRODUCTS_BY_CATEGORY])
    product = category_offsets[category] + picked % category_sizes[category]
    # Line k of an order takes the first line's product shifted by 7k in the
    # catalogue, so that no order lists one product twice.
    first_line = np.cumsum(lines_per_order) - lines_per_order
    product = (product[first_line][line_order] + line_rank * 7) % len(PRODUCTS)
    quantity = 1 + rng.poisson(basket[line_member])
    is_promo = rng.random(line_order.size) < promo[line_member]
    unit_price = np.where(is_promo, (PRODUCT_PRICE[product] * 0.75).astype(np.int64), PRODUCT_PRICE[product])
    amount = np.bincount(line_order, weights=unit_price * quantity, minlength=count).astype(np.int64)
    refunded = rng.random(count) < 0.03
    coupon = rng.random(count) < 0.08
    channel = rng.integers(0, len(CHANNELS), count)

    ordered_text = _timestamps(ordered, sqlite)
    amount_text = _money(amount)
    orders = [
        (
            int(order_ids[i]),
            f"SO{order_ids[i]:010d}",
            int(ids[owner[i]]),
            ordered_text[i],
            amount_text[i],
            "refunded" if refunded[i] else "paid",
            CHANNELS[channel[i]],
            f"CP{order_ids[i]:08d}" if coupon[i] else "",
        )
        for i in range(count)
    ]
    price_text = _money(unit_price)
    line_ids = np.arange(line_id, line_id + line_order.size)
    lines = [
        (int(line_ids[i]), int(order_ids[line_order[i]]), int(product[i]) + 1, int(quantity[i]), price_text[i], bool(is_promo[i]))
        for i in range(line_order.size)
    ]

    # Engagement: influencers share, invite and organise a lot; others a little.
    influencer = rng.random(size) < INFLUENCER_SHARE
    n_events = np.where(influencer, rng.poisson(40, size), rng.poisson(1.5, size))
    n_events[is_new] = np.minimum(n_events[is_new], 1)
    event_owner = np.repeat(np.arange(size), n_events)
    kind_weights = np.where(influencer[event_owner, None], [[0.35, 0.2, 0.35, 0.1]], [[0.55, 0.1, 0.35, 0.0]])
    kind = (rng.random(event_owner.size)[:, None] > np.cumsum(kind_weights, axis=1)).sum(axis=1)
    kind = np.minimum(kind, 3)
    event_day = (active_from[event_owner] // SECONDS_PER_DAY) + (
        rng.random(event_owner.size) * np.maximum((end - active_from[event_owner]) // SECONDS_PER_DAY, 1)
    ).astype(np.int64)
    # One row per member, kind and day: the natural key of an engagement event.
    keys = np.unique(np.stack([event_owner, kind, event_day], axis=1), axis=0, return_counts=True)
    event_rows, event_counts = keys
    event_times = _timestamps(event_rows[:, 2] * SECONDS_PER_DAY + 12 * 3600 - TZ_OFFSET_SECONDS, sqlite)
    kinds = ["share", "invite", "group_message", "organised_group_buy"]
    events = [
        (int(ids[row[0]]), kinds[row[1]], event_times[i], int(event_counts[i] * (3 if influencer[row[0]] else 1)))
        for i, row in enumerate(event_rows)
    ]
    # User content (a recipe, a review): one in ten of the days a member shares, derived without
    # drawing from the generator, so that every other figure of the demo stays as it was.
    events += [
        (int(ids[row[0]]), "ugc", event_times[i], 1)
        for i, row in enumerate(event_rows)
        if row[1] == 0 and (row[0] + row[2]) % 10 == 0
    ]

    consents = []
    for channel_name, share in CONSENT_RATES.items():
        asked = rng.random(size) < 0.9
        granted = rng.random(size) < share
        for i in np.flatnonzero(asked):
            consents.append((int(ids[i]), channel_name, bool(granted[i]), reg_text[i], "seed_demo"))

    tagged = rng.random(size) < 0.12
    first_tag = rng.integers(0, len(TAGS), size)
    member_tags = [(int(ids[i]), int(first_tag[i]) + 1) for i in np.flatnonzero(tagged)]
    return Chunk(members, orders, lines, events, consents, member_tags), order_id + count, line_id + line_order.size
