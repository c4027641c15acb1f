"""Message templates: a fixed, documented context and nothing else.

A template is Django template syntax, but only text, {{ variable }} (one of
CONTEXT_VARIABLES, no attribute lookups, a few formatting filters) and
{% if %} are accepted; anything else is rejected when the template is saved.
The values are plain strings and numbers, so a template can never reach a
model, a method or a setting. The context for many members at once is built
with a handful of queries per batch (contexts_for)."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.base import FilterExpression, TextNode, Variable, VariableDoesNotExist, VariableNode, render_value_in_context
from django.template.defaulttags import IfNode
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import Purpose

CONTEXT_VARIABLES: dict[str, object] = {
    "salutation": gettext_lazy("polite form of address from surname, gender and age band (张阿姨, 王姐, 李先生)"),
    "name": gettext_lazy("the member's name"),
    "tier": gettext_lazy("the member's tier (黄金会员)"),
    "next_tier": gettext_lazy("the tier above (empty at the top)"),
    "gap_spend": gettext_lazy("spend still missing for the tier above, in yuan (320)"),
    "gap_orders": gettext_lazy("orders still missing for the tier above (2)"),
    "usual_product": gettext_lazy("the product the member buys most (土鸡蛋), else the favourite category"),
    "product": gettext_lazy("the product a restock or offer reminder is about, else the usual product"),
    "coupon": gettext_lazy("what the coupon gives (¥10无门槛券)"),
    "coupon_code": gettext_lazy("the member's own coupon code"),
    "coupon_expiry": gettext_lazy("the coupon's last day (11月30日)"),
    "rights": gettext_lazy("the rights of the member's tier (新品优先购买权、线下品鉴会邀请)"),
    "next_tier_rights": gettext_lazy("what the tier above adds (组合套装9折、加购指定商品85折)"),
    "points": gettext_lazy("the member's available points (1200)"),
    "points_expiring": gettext_lazy("points that expire within 30 days (300)"),
    "leader": gettext_lazy("the community's group leader"),
    "community": gettext_lazy("the community group"),
}
ALLOWED_FILTERS = {"default", "floatformat", "truncatechars", "add"}
SMS_SINGLE = 70  # characters in a one-part SMS (Chinese)
SMS_PART = 67  # characters per part of a long SMS (the rest carries the joining header)
ENGINE = Engine(autoescape=False, string_if_invalid="")
COMPOUND_SURNAMES = {
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文", "司徒", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门",
}
FALLBACK_SALUTATION = "亲爱的会员"


def _expression_names(expression: FilterExpression, errors: list[str]) -> None:
    var = expression.var
    if isinstance(var, Variable) and var.lookups is not None:
        name = ".".join(var.lookups)
        if len(var.lookups) != 1 or var.lookups[0] not in CONTEXT_VARIABLES:
            errors.append(
                _("unknown variable “%(name)s”: use one of %(names)s") % {"name": name, "names": ", ".join(CONTEXT_VARIABLES)}
            )
    for func, args in expression.filters:
        if func.__name__ not in ALLOWED_FILTERS:
            errors.append(_("the filter “%(name)s” is not allowed here") % {"name": func.__name__})
        for is_lookup, arg in args:
            if is_lookup:
                errors.append(_("filter arguments must be plain values"))


def _condition_names(condition, errors: list[str]) -> None:
    if condition is None:
        return
    if hasattr(condition, "value") and isinstance(condition.value, FilterExpression):
        _expression_names(condition.value, errors)
    for side in ("first", "second"):
        _condition_names(getattr(condition, side, None), errors)


def _walk(nodelist, errors: list[str]) -> None:
    for node in nodelist:
        if isinstance(node, TextNode):
            continue
        if isinstance(node, VariableNode):
            _expression_names(node.filter_expression, errors)
        elif isinstance(node, IfNode):
            for condition, branch in node.conditions_nodelists:
                _condition_names(condition, errors)
                _walk(branch, errors)
        else:
            tag = (getattr(node, "token", None) and node.token.contents.split()[0]) or type(node).__name__
            errors.append(_("the tag “%(tag)s” is not allowed: use {{ variable }} and {%% if %%} only") % {"tag": tag})


def template_validate(field: str, *texts: str) -> None:
    """A model's clean(): the template errors of its texts, under one form field."""
    from django.core.exceptions import ValidationError

    errors = [error for text in texts if text for error in template_errors(text)]
    if errors:
        raise ValidationError({field: errors})


def template_errors(source: str) -> list[str]:
    """What is wrong with a template's text; empty when it may be saved."""
    try:
        template = Template(source, engine=ENGINE)
    except TemplateSyntaxError as exc:
        return [_("template syntax: %(error)s") % {"error": exc}]
    errors: list[str] = []
    _walk(template.nodelist, errors)
    return list(dict.fromkeys(errors))


class Compiled:
    """A template ready to render many times: Django's parse, rendered without
    Django's per-node machinery (30–50 µs a message, the largest Python cost of
    a fan-out). Text and a plain {{ variable }} are joined directly; a variable
    with filters and an {% if %} condition are evaluated by Django's own
    FilterExpression and condition objects, so the output is Django's. A
    template with any other tag (never saved: template_errors refuses them)
    renders through Django whole."""

    def __init__(self, source: str) -> None:
        self.template = Template(source, engine=ENGINE)
        self.parts = _parts(self.template.nodelist)

    def render(self, values: dict[str, object]) -> str:
        context = Context(values, autoescape=False)
        if self.parts is None:
            return self.template.render(context)
        context.template = self.template  # what Template.render binds: a missing variable reads the engine's string_if_invalid
        return _render_parts(self.parts, values, context)


class _Name(str):
    """A part that is a bare {{ variable }}: the variable's name."""


def _parts(nodelist) -> list | None:
    parts: list = []
    for node in nodelist:
        if isinstance(node, TextNode):
            parts.append(node.s)
        elif isinstance(node, VariableNode):
            expression = node.filter_expression
            var = expression.var
            if isinstance(var, Variable) and var.lookups is not None and len(var.lookups) == 1 and not expression.filters:
                parts.append(_Name(var.lookups[0]))
            else:
                parts.append(expression)
        elif isinstance(node, IfNode):
            branches = []
            for condition, branch in node.conditions_nodelists:
                inner = _parts(branch)
                if inner is None:
                    return None
                branches.append((condition, inner))
            parts.append(branches)
        else:
            return None
    return parts


def _render_parts(parts: list, values: dict[str, object], context: Context) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            if isinstance(part, _Name):
                value = values.get(part, "")
                part = value if isinstance(value, str) else render_value_in_context(value, context)
            out.append(part)
        elif isinstance(part, FilterExpression):
            out.append(render_value_in_context(part.resolve(context), context))
        else:
            for condition, branch in part:
                if condition is None:
                    match = True
                else:
                    try:
                        match = condition.eval(context)
                    except VariableDoesNotExist:
                        match = None
                if match:
                    out.append(_render_parts(branch, values, context))
                    break
    return "".join(out)


def compile_template(source: str) -> Compiled:
    return Compiled(source)


def render(template: Compiled, context: dict[str, object]) -> str:
    return template.render(context).strip()


def with_unsubscribe(text: str, line: str) -> str:
    if not line or text.endswith(line):
        return text
    if text and text[-1] not in "。！？!?.，,":
        text += "。"
    return f"{text}{line}"


def message_text(template: Template, context: dict[str, object], *, channel: str, purpose: str, unsubscribe_line: str) -> str:
    """The text a member receives: marketing SMS end with the unsubscribe line, nothing else does."""
    text = render(template, context)
    if channel == "sms" and purpose == Purpose.MARKETING:
        text = with_unsubscribe(text, unsubscribe_line)
    return text


def sms_segments(text: str) -> int:
    """How many SMS a text is billed as (70 characters in one, 67 per part when longer)."""
    if len(text) <= SMS_SINGLE:
        return 1
    return math.ceil(len(text) / SMS_PART)


def surname(name: str) -> str:
    name = name.strip()
    if name[:2] in COMPOUND_SURNAMES:
        return name[:2]
    return name[:1]


@dataclass(frozen=True)
class CouponView:
    """What a message says about a coupon."""

    code: str
    valid_until: dt.datetime
    description: str


@dataclass(frozen=True)
class AddressRule:
    gender: str  # "" = any
    age_band: str  # "" = any
    suffix: str


def salutation_for(name: str, gender: str, age_band: str, rules: Sequence[AddressRule]) -> str:
    """The first rule (rules in priority order) whose gender and age band fit: 张 + 阿姨."""
    family = surname(name)
    if not family or not "\u4e00" <= family[0] <= "\u9fff":
        return FALLBACK_SALUTATION
    for rule in rules:
        if rule.gender and rule.gender != gender:
            continue
        if rule.age_band and rule.age_band != age_band:
            continue
        return f"{family}{rule.suffix}"
    return FALLBACK_SALUTATION


def yuan(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')).normalize():f}"


def expiry_text(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return f"{local.month}月{local.day}日"


def address_rules() -> list[AddressRule]:
    from campaigns.models import SalutationRule

    return [AddressRule(rule.gender, rule.age_band, rule.suffix) for rule in SalutationRule.objects.all()]


def usual_products(member_ids: Iterable[int], since: dt.datetime) -> dict[int, str]:
    """The product each member bought most often since a moment (ties: the name first in order).

    On PostgreSQL one statement, a LATERAL lookup per member through the
    (member, time) and (order, product) indexes: 70 ms for a thousand members
    (as a plain join PostgreSQL misestimated a batch and hashed every order
    line, 3.3 s; as two lookups with the counting in Python, 330 ms).
    Elsewhere two index lookups, counted here."""
    from django.db import connection

    from crm.bulkload import bigint_array, sql_in
    from crm.models import OrderStatus, Product

    member_ids = list(member_ids)
    if not member_ids:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT b.member_id, u.name FROM unnest(%s::bigint[]) AS b(member_id) CROSS JOIN LATERAL ("
                " SELECT p.name FROM crm_order o JOIN crm_orderline l ON l.order_id = o.id JOIN crm_product p ON p.id = l.product_id"
                " WHERE o.member_id = b.member_id AND o.status = %s AND o.ordered_at >= %s"
                " GROUP BY p.id, p.name ORDER BY COUNT(*) DESC, p.name LIMIT 1) AS u",
                [bigint_array(member_ids), OrderStatus.PAID, since],
            )
            return dict(cursor.fetchall())
    counts: Counter = Counter()
    with connection.cursor() as cursor:
        members_in, params = sql_in(cursor, member_ids)
        cursor.execute(
            f"SELECT id, member_id FROM crm_order WHERE member_id {members_in} AND status = %s AND ordered_at >= %s",  # nosec B608
            [*params, OrderStatus.PAID, since],
        )
        order_member = dict(cursor.fetchall())
        order_ids = list(order_member)
        for start in range(0, len(order_ids), 10_000):
            orders_in, params = sql_in(cursor, order_ids[start : start + 10_000])
            cursor.execute(f"SELECT order_id, product_id FROM crm_orderline WHERE order_id {orders_in}", params)  # nosec B608
            for order_id, product_id in cursor.fetchall():
                counts[(order_member[order_id], product_id)] += 1
    names = dict(Product.objects.filter(pk__in={product for _member, product in counts}).values_list("pk", "name"))
    best: dict[int, tuple[int, str]] = {}
    for (member_id, product_id), n in counts.items():
        name = names.get(product_id, "")
        current = best.get(member_id)
        if current is None or n > current[0] or (n == current[0] and name < current[1]):
            best[member_id] = (n, name)
    return {member_id: name for member_id, (_n, name) in best.items()}


# What contexts_for reads of each member (a caller that already holds these rows passes them).
MEMBER_FIELDS = (
    "id", "name", "gender", "age_band", "community__name", "community__leader__display_name",
    "metrics__tier_id", "metrics__orders_365", "metrics__spend_365", "metrics__last_order_at", "metrics__favourite_category__name",
)


def contexts_for(
    member_ids: Sequence[int],
    coupons: dict[int, CouponView | None] | None = None,
    *,
    now: dt.datetime | None = None,
    members: Iterable[dict] | None = None,
    product: str = "",
) -> dict[int, dict]:
    """The template context of each member, built with a handful of queries whatever the batch size.

    product: what a restock or offer reminder is about (its campaign's product)."""
    from crm.bulkload import ids_in
    from crm.models import Member
    from loyalty.models import Balance, Right
    from segments.ladder import RFM, gap_to_next, recency_days
    from segments.services import ladder_load

    now = now or timezone.now()
    today = timezone.localdate(now)
    coupons = coupons or {}
    ladder = ladder_load()
    by_id = {rung.id: rung for rung in ladder}
    rules = address_rules()
    products = usual_products(member_ids, now - dt.timedelta(days=365))
    # A tier's rights are its own and those of every tier below it (its own first, as the
    # member page lists them); the tier above adds its own.
    own_rights: dict[int, list[str]] = defaultdict(list)
    for tier_id, name in Right.objects.filter(active=True).order_by("tier__rank", "position", "id").values_list("tier_id", "name"):
        own_rights[tier_id].append(name)
    rights_text = {
        rung.id: "、".join(name for lower in ladder if lower.rank <= rung.rank for name in own_rights[lower.id]) for rung in ladder
    }
    balances = {
        member_id: (points - pending, expiring)
        for member_id, points, pending, expiring in Balance.objects.filter(member_id__in=ids_in(member_ids)).values_list(
            "member_id", "points", "pending", "expiring")
    }
    contexts: dict[int, dict] = defaultdict(dict)
    zone = timezone.get_current_timezone()
    expiries: dict[dt.datetime, str] = {}  # a batch's coupons share one or two expiry moments
    if members is None:
        members = Member.objects.filter(pk__in=ids_in(member_ids)).values(*MEMBER_FIELDS)
    for member in members:
        rung = by_id.get(member["metrics__tier_id"])
        gap = None
        if rung is not None:
            last = member["metrics__last_order_at"]
            rfm = RFM(
                recency_days=recency_days(last.astimezone(zone).date() if last else None, today),
                orders_365=member["metrics__orders_365"],
                spend_365=member["metrics__spend_365"],
            )
            gap = gap_to_next(rfm, rung, ladder)
        coupon = coupons.get(member["id"])
        if coupon and coupon.valid_until not in expiries:
            expiries[coupon.valid_until] = expiry_text(coupon.valid_until)
        usual = products.get(member["id"]) or member["metrics__favourite_category__name"] or ""
        contexts[member["id"]] = {
            "salutation": salutation_for(member["name"], member["gender"], member["age_band"], rules),
            "name": member["name"],
            "tier": rung.name if rung else "",
            "next_tier": gap.rung.name if gap else "",
            "gap_spend": yuan(gap.spend) if gap else "0",
            "gap_orders": gap.orders if gap else 0,
            "usual_product": usual,
            "product": product or usual,
            "rights": rights_text.get(rung.id, "") if rung else "",
            "next_tier_rights": "、".join(own_rights[gap.rung.id]) if gap else "",
            "points": balances.get(member["id"], (0, 0))[0],
            "points_expiring": balances.get(member["id"], (0, 0))[1],
            "coupon": coupon.description if coupon else "",
            "coupon_code": coupon.code if coupon else "",
            "coupon_expiry": expiries[coupon.valid_until] if coupon else "",
            "leader": member["community__leader__display_name"] or "",
            "community": member["community__name"] or "",
        }
    return dict(contexts)
