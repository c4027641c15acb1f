"""Fill an empty database with the demo community data set (crm/demo.py)."""

from __future__ import annotations

import datetime as dt
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from crm import demo, roles
from crm.bulkload import analyze, load_rows, reset_sequences, secondary_indexes_dropped
from crm.models import (
    Category,
    Community,
    Consent,
    ConsentEvent,
    EngagementEvent,
    GroupLeader,
    Member,
    MemberTag,
    Order,
    OrderLine,
    Product,
    Tag,
)
from crm.importing.models import ImportJob

BIG_TABLES = ["crm_member", "crm_order", "crm_orderline", "crm_engagementevent", "crm_consent", "crm_consentevent", "crm_membertag"]
# Above this many members a PostgreSQL load drops and rebuilds secondary indexes.
REBUILD_INDEXES_FROM = 50_000


class Command(BaseCommand):
    help = "Fill an empty database with a deterministic demo community (members, orders, lines, engagement, consent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--members", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="last day of the history (default: today)")
        parser.add_argument("--reset", action="store_true", help="delete all members, orders and imports first")

    def handle(self, *args, members: int, seed: int, as_of: dt.date | None, reset: bool, **options) -> None:
        if members < 1:
            raise CommandError("--members must be at least 1")
        as_of = as_of or timezone.localdate()
        if Member.objects.exists() and not reset:
            self.stdout.write("The database already holds members; nothing seeded (use --reset to start over).")
            return
        started = time.monotonic()
        with transaction.atomic():
            if reset:
                self._reset()
            self._reference_data(members)
            counts = self._load(members=members, seed=seed, as_of=as_of)
        analyze(BIG_TABLES)
        summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Seeded {summary} in {time.monotonic() - started:.0f} s (seed {seed}, as of {as_of})."))

    def _reset(self) -> None:
        models = [MemberTag, ConsentEvent, Consent, EngagementEvent, OrderLine, Order, Member, Tag, Product, Category, Community, GroupLeader, ImportJob]
        if connection.vendor == "postgresql":
            tables = ", ".join(model._meta.db_table for model in models)
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        else:
            for model in models:
                model.objects.all().delete()
        get_user_model().objects.filter(username__startswith="leader", is_superuser=False).delete()

    def _reference_data(self, members: int) -> None:
        Category.objects.bulk_create([Category(id=i + 1, name=name) for i, name in enumerate(demo.CATEGORIES)])
        Product.objects.bulk_create(
            [
                Product(id=i + 1, sku=f"SKU{i + 1:04d}", name=name, category_id=demo.CATEGORIES.index(category) + 1)
                for i, (category, name, _price) in enumerate(demo.PRODUCTS)
            ]
        )
        Tag.objects.bulk_create([Tag(id=i + 1, name=name) for i, name in enumerate(demo.TAGS)])
        User = get_user_model()
        communities = demo.community_count(members)
        users = User.objects.bulk_create(
            [User(username=f"leader{i + 1:04d}", is_staff=True, password=make_password(None)) for i in range(communities)]
        )
        users = list(User.objects.filter(username__in=[user.username for user in users]).order_by("username"))
        leader_role = Group.objects.filter(name=roles.LEADER).first()
        if leader_role is not None:
            leader_role.user_set.add(*users)
        GroupLeader.objects.bulk_create(
            [
                GroupLeader(id=i + 1, user=user, display_name=f"{demo.SURNAMES[i % len(demo.SURNAMES)]}团长{i + 1}")
                for i, user in enumerate(users)
            ]
        )
        hoods = demo.NEIGHBOURHOODS
        Community.objects.bulk_create(
            [
                Community(id=i + 1, name=f"{hoods[i % len(hoods)]}{i // len(hoods) + 1}群", leader_id=i + 1)
                for i in range(communities)
            ]
        )

    def _load(self, *, members: int, seed: int, as_of: dt.date) -> dict[str, int]:
        counts = dict.fromkeys(["members", "orders", "order lines", "engagement events", "consents"], 0)
        sqlite = connection.vendor == "sqlite"
        tables = BIG_TABLES if members >= REBUILD_INDEXES_FROM else []
        with secondary_indexes_dropped(tables):
            for chunk in demo.generate(members=members, seed=seed, as_of=as_of, sqlite=sqlite):
                counts["members"] += load_rows("crm_member", MEMBER_COLUMNS, chunk.members)
                counts["orders"] += load_rows("crm_order", ORDER_COLUMNS, chunk.orders)
                counts["order lines"] += load_rows("crm_orderline", LINE_COLUMNS, chunk.lines)
                counts["engagement events"] += load_rows("crm_engagementevent", EVENT_COLUMNS, chunk.events)
                counts["consents"] += load_rows("crm_consent", CONSENT_COLUMNS, chunk.consents)
                load_rows("crm_consentevent", CONSENT_EVENT_COLUMNS, chunk.consents)
                load_rows("crm_membertag", ["member_id", "tag_id"], chunk.member_tags)
                self.stdout.write(f"  {counts['members']:,} members, {counts['orders']:,} orders", ending="\r")
                self.stdout.flush()
        self.stdout.write("")
        reset_sequences([Category, Product, Tag, GroupLeader, Community, Member, Order, OrderLine])
        return counts


MEMBER_COLUMNS = [
    "id", "external_id", "name", "mobile", "wechat_unionid", "gender", "birthday", "age_band", "lives_alone",
    "has_elderly", "has_children", "works_late", "registered_at", "source_channel", "community_id",
    "personalisation_opt_out", "personalisation_opt_out_at", "created_at",
]
ORDER_COLUMNS = ["id", "order_no", "member_id", "ordered_at", "amount", "status", "channel", "coupon_code"]
LINE_COLUMNS = ["id", "order_id", "product_id", "quantity", "unit_price", "is_promo"]
EVENT_COLUMNS = ["member_id", "kind", "occurred_at", "count"]
CONSENT_COLUMNS = ["member_id", "channel", "granted", "changed_at", "source"]
CONSENT_EVENT_COLUMNS = ["member_id", "channel", "granted", "occurred_at", "source"]
