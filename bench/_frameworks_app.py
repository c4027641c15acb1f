"""The two API libraries DESIGN.md names, serving the same two operations, for
bench/api_frameworks.py: a lookup (GET, one query, a JSON answer of the
standing's shape) and a validated POST (a body of 100 order items checked
field by field, then answered). Not part of the product: it only exists so
that the choice between them is measured, not guessed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crm.settings import *  # noqa: F401,F403 - the product's settings, with this module's URLs

ROOT_URLCONF = "bench._frameworks_app"
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework"]  # noqa: F405
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
MIDDLEWARE = [m for m in MIDDLEWARE if "csrf" not in m.lower()]  # noqa: F405


def _standing(external_id: str) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", [external_id])
        cursor.fetchone()
    return {
        "external_id": external_id,
        "tier": {"code": "A", "name": "黄金"},
        "next_tier": {"code": "S", "name": "钻石", "spend_missing": "120.50", "orders_missing": 2},
        "rights": [{"code": f"r{i}", "name": "包邮", "points_cost": 100} for i in range(5)],
        "points": {"available": 1200, "pending": 300, "expiring_30d": 0},
        "coupons": [{"code": "ABCDEFGHJ", "terms": "满59减15券", "valid_until": "2026-12-31T23:59:59+08:00"}],
        "offers": [{"title": "限量款", "image_url": "https://example.com/a.png", "products": ["SKU1", "SKU2"]}],
    }


# django-ninja
from ninja import NinjaAPI, Schema  # noqa: E402
from pydantic import ConfigDict  # noqa: E402


class NinjaOrder(Schema):
    model_config = ConfigDict(extra="forbid")
    order_no: str
    member_external_id: str
    ordered_at: dt.datetime
    amount: Decimal
    status: str = "paid"


class NinjaBatch(Schema):
    model_config = ConfigDict(extra="forbid")
    items: list[NinjaOrder]


ninja_api = NinjaAPI(urls_namespace="bench_ninja")


@ninja_api.get("/members/{external_id}/standing")
def ninja_standing(request, external_id: str):
    return _standing(external_id)


@ninja_api.post("/orders")
def ninja_orders(request, batch: NinjaBatch):
    return {"received": len(batch.items)}


# Django REST framework
from rest_framework import serializers  # noqa: E402
from rest_framework.decorators import api_view  # noqa: E402
from rest_framework.response import Response  # noqa: E402


class DrfOrder(serializers.Serializer):
    order_no = serializers.CharField()
    member_external_id = serializers.CharField()
    ordered_at = serializers.DateTimeField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    status = serializers.CharField(default="paid")


class DrfBatch(serializers.Serializer):
    items = DrfOrder(many=True)


@api_view(["GET"])
def drf_standing(request, external_id: str):
    return Response(_standing(external_id))


@api_view(["POST"])
def drf_orders(request):
    batch = DrfBatch(data=request.data)
    batch.is_valid(raise_exception=True)
    return Response({"received": len(batch.validated_data["items"])})


from django.urls import path  # noqa: E402

urlpatterns = [
    path("ninja/", ninja_api.urls),
    path("drf/members/<str:external_id>/standing", drf_standing),
    path("drf/orders", drf_orders),
]
