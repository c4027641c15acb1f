"""Templates reach only the documented context; salutations; SMS length."""

import pytest

from campaigns.rendering import AddressRule, salutation_for, with_unsubscribe
from campaigns.templating import compile_template, render, sms_segments, template_errors

RULES = [
    AddressRule("F", "55+", "阿姨"),
    AddressRule("F", "45-54", "姐"),
    AddressRule("M", "55+", "叔"),
    AddressRule("M", "", "先生"),
    AddressRule("F", "", "女士"),
]


def test_a_template_over_the_documented_context_is_accepted():
    assert template_errors("{{ salutation }}，您常买的{{ usual_product }}补货啦{% if next_tier %}，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员{% endif %}") == []
    assert template_errors("{{ name|default:'您' }}") == []


@pytest.mark.parametrize(
    "source, complaint",
    [
        ("{{ mobile }}", "unknown variable “mobile”"),
        ("{{ member.mobile }}", "unknown variable “member.mobile”"),
        ("{{ name.upper }}", "unknown variable “name.upper”"),
        ("{% if settings.SECRET_KEY %}x{% endif %}", "unknown variable “settings.SECRET_KEY”"),
        ("{% load static %}{% static 'x' %}", "template syntax"),
        ("{% include 'admin/base.html' %}", "the tag “include” is not allowed"),
        ("{% debug %}", "the tag “debug” is not allowed"),
        ("{{ name|safe }}", "the filter “safe” is not allowed"),
        ("{{ name|default:tier }}", "filter arguments must be plain values"),
        ("{% if %}", "template syntax"),
    ],
)
def test_anything_outside_the_context_is_rejected_with_a_reason(source, complaint):
    errors = template_errors(source)
    assert any(complaint in error for error in errors), errors


def test_rendering_uses_plain_values_without_html_escaping():
    text = render(compile_template("{{ salutation }}，{{ usual_product }} & 酸奶"), {"salutation": "张阿姨", "usual_product": "<土鸡蛋>"})
    assert text == "张阿姨，<土鸡蛋> & 酸奶"


@pytest.mark.parametrize(
    "name, gender, band, expected",
    [
        ("张桂兰", "F", "55+", "张阿姨"),
        ("王丽", "F", "45-54", "王姐"),
        ("李强", "M", "25-34", "李先生"),
        ("刘建国", "M", "55+", "刘叔"),
        ("欧阳娜娜", "F", "18-24", "欧阳女士"),
        ("陈某", "U", "", "亲爱的会员"),
        ("", "F", "55+", "亲爱的会员"),
        ("Alice", "F", "25-34", "亲爱的会员"),
    ],
)
def test_salutation_from_surname_gender_and_age_band(name, gender, band, expected):
    assert salutation_for(name, gender, band, RULES) == expected


def test_sms_length_in_segments():
    assert sms_segments("字" * 70) == 1
    assert sms_segments("字" * 71) == 2
    assert sms_segments("字" * 134) == 2
    assert sms_segments("字" * 135) == 3


def test_the_unsubscribe_line_is_appended_once():
    assert with_unsubscribe("土鸡蛋补货啦", "拒收请回复R") == "土鸡蛋补货啦。拒收请回复R"
    assert with_unsubscribe("土鸡蛋补货啦！", "回T退订") == "土鸡蛋补货啦！回T退订"
    assert with_unsubscribe("补货啦。拒收请回复R", "拒收请回复R") == "补货啦。拒收请回复R"


@pytest.mark.django_db
def test_the_usual_product_is_the_one_bought_most_often_within_the_year():
    """Counted by orders (a big basket of milk once is not a habit), paid orders of
    the last 365 days only, ties to the name first in order; nobody without orders."""
    import datetime as dt

    from django.utils import timezone

    from campaigns.rendering import usual_products
    from tests.crm.factories import MemberFactory, OrderFactory, OrderLineFactory, ProductFactory

    now = timezone.now()
    eggs, milk, rice, tofu = (ProductFactory(name=name) for name in ("土鸡蛋", "牛奶", "大米", "豆腐"))
    zhang, wang, li, nobody = (MemberFactory() for _ in range(4))

    def bought(member, *products, days_ago=3, status="paid", quantity=1):
        order = OrderFactory(member=member, ordered_at=now - dt.timedelta(days=days_ago), status=status)
        for product in products:
            OrderLineFactory(order=order, product=product, quantity=quantity)

    bought(zhang, eggs)
    bought(zhang, eggs, milk)
    bought(zhang, milk, quantity=20)
    bought(zhang, eggs, days_ago=10)
    for days_ago in (400, 500, 600):  # rice, but long ago
        bought(wang, rice, days_ago=days_ago)
    bought(wang, tofu)
    for _ in range(3):  # milk, but refunded
        bought(li, milk, status="refunded")
    bought(li, rice, tofu)  # a tie: 大米 sorts before 豆腐
    assert usual_products([zhang.pk, wang.pk, li.pk, nobody.pk], now - dt.timedelta(days=365)) == {
        zhang.pk: "土鸡蛋", wang.pk: "豆腐", li.pk: "大米",
    }


# Every template the product ships, and the constructs template_errors accepts.
SHIPPED = [
    "{{ salutation }}，您常买的{{ usual_product }}补货啦{% if next_tier %}，再消费¥{{ gap_spend }}即可升级{{ next_tier }}会员{% endif %}。",
    "{{ salutation }}，{{ leader|default:'团长' }}给您留了{{ usual_product|default:'好货' }}，{{ coupon_expiry }}前用券码{{ coupon_code }}立减",
    "{% if gap_orders > 1 %}再买{{ gap_orders }}次{% elif gap_orders == 1 %}再买一次{% else %}已达标{% endif %}，{{ gap_spend|floatformat:'1' }}",
    "{% if not coupon %}无券{% endif %}{% if tier and next_tier %}{{ tier }}→{{ next_tier }}{% endif %}{{ name|truncatechars:'3' }}{{ gap_orders|add:'2' }}",
    "{{ 'literal' }}{{ missing_in_this_context }}{% if coupon_code == 'Q1' %}一{% else %}二{% endif %}",
]


def _shipped_templates():
    import importlib

    from campaigns import demo

    defaults = importlib.import_module("campaigns.migrations.0004_journey_defaults")
    shipped = list(defaults.TEMPLATES.values()) + [row[2] for row in defaults.WORKLIST] + [body for _name, body in demo.TEMPLATES]
    assert len(shipped) > 15
    return SHIPPED + shipped


def _django(source: str, values: dict) -> str:
    from django.template import Context, Template

    from campaigns.templating import ENGINE

    return Template(source, engine=ENGINE).render(Context(values, autoescape=False)).strip()


@pytest.mark.parametrize("source", _shipped_templates())
def test_the_fast_renderer_writes_what_django_writes(source):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from campaigns.templating import CONTEXT_VARIABLES

    assert template_errors(source) == [] or "missing_in_this_context" in source
    compiled = compile_template(source)
    assert compiled.parts is not None  # the fast path, not the fallback
    value = st.one_of(st.text(max_size=6), st.integers(-3, 500), st.sampled_from(["", "0", "Q1", "320.5", "<b>&"]))

    @settings(max_examples=60, deadline=None)
    @given(st.dictionaries(st.sampled_from(sorted(CONTEXT_VARIABLES)), value))
    def agrees(values):
        assert render(compiled, values) == _django(source, values)

    agrees()
