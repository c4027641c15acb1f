import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import factory
from django.contrib.auth import get_user_model

from crm.models import Community, GroupLeader, Member, Order, OrderLine, Product, Category, EngagementEvent

SHANGHAI = ZoneInfo("Asia/Shanghai")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True


class GroupLeaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupLeader

    user = factory.SubFactory(UserFactory)
    display_name = factory.Sequence(lambda n: f"团长{n}")


class CommunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Community

    name = factory.Sequence(lambda n: f"幸福里{n}群")
    leader = factory.SubFactory(GroupLeaderFactory)


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    external_id = factory.Sequence(lambda n: f"M{n:06d}")
    name = factory.Sequence(lambda n: f"张{n}")
    mobile = factory.Sequence(lambda n: f"138{n:08d}")
    gender = "F"
    community = factory.SubFactory(CommunityFactory)
    registered_at = dt.datetime(2025, 1, 1, 10, tzinfo=SHANGHAI)


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("name",)

    name = "生鲜"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU{n:05d}")
    name = factory.Sequence(lambda n: f"土鸡蛋{n}")
    category = factory.SubFactory(CategoryFactory)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    order_no = factory.Sequence(lambda n: f"SO{n:08d}")
    member = factory.SubFactory(MemberFactory)
    ordered_at = dt.datetime(2025, 6, 1, 9, 30, tzinfo=SHANGHAI)
    amount = Decimal("88.00")


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    unit_price = Decimal("88.00")


class EngagementEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EngagementEvent

    member = factory.SubFactory(MemberFactory)
    kind = "share"
    occurred_at = dt.datetime(2025, 6, 1, 12, tzinfo=SHANGHAI)
    count = 1
