"""Template syntax: what a message or script template may say, checked when
it is saved, and compiled once for rendering many members.

A template is Django template syntax, but only text, {{ variable }} (one of
CONTEXT_VARIABLES, no attribute lookups, a few formatting filters) and
{% if %} are accepted; anything else is rejected. This module reads no data:
campaigns.rendering builds the values a template is rendered with."""

from __future__ import annotations

import math

from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.base import FilterExpression, TextNode, Variable, VariableDoesNotExist, VariableNode, render_value_in_context
from django.template.defaulttags import IfNode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

CONTEXT_VARIABLES: dict[str, object] = {
    "salutation": gettext_lazy("polite form of address from surname, gender and age band (张阿姨, 王姐, 李先生)"),
    "name": gettext_lazy("the member's name"),
    "tier": gettext_lazy("the member's tier (黄金会员)"),
    "next_tier": gettext_lazy("the tier above (empty at the top)"),
    "gap_spend": gettext_lazy("spend still missing for the tier above, in yuan (320)"),
    "gap_orders": gettext_lazy("orders still missing for the tier above (2)"),
    "usual_product": gettext_lazy("the product the member buys most (土鸡蛋), else the favourite category"),
    "product": gettext_lazy("the product a restock or offer reminder is about, else the usual product"),
    "coupon": gettext_lazy("what the coupon gives (¥10无门槛券): the campaign's or step's own, else the invite reward that started the journey"),
    "coupon_code": gettext_lazy("the member's own coupon code"),
    "coupon_expiry": gettext_lazy("the coupon's last day (11月30日)"),
    "rights": gettext_lazy("the rights of the member's tier (新品优先购买权、线下品鉴会邀请)"),
    "next_tier_rights": gettext_lazy("what the tier above adds (组合套装9折、加购指定商品85折)"),
    "points": gettext_lazy("the member's available points (1200)"),
    "points_expiring": gettext_lazy("points that expire within 30 days (300)"),
    "invite_offer": gettext_lazy("what friends invited earn, from the invite reward settings (邀1位好友得¥5，邀3位好友得¥20; empty while off)"),
    "leader": gettext_lazy("the community's group leader"),
    "community": gettext_lazy("the community group"),
}
ALLOWED_FILTERS = {"default", "floatformat", "truncatechars", "add"}
SMS_SINGLE = 70  # characters in a one-part SMS (Chinese)
SMS_PART = 67  # characters per part of a long SMS (the rest carries the joining header)
ENGINE = Engine(autoescape=False, string_if_invalid="")


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


def sms_segments(text: str) -> int:
    """How many SMS a text is billed as (70 characters in one, 67 per part when longer)."""
    if len(text) <= SMS_SINGLE:
        return 1
    return math.ceil(len(text) / SMS_PART)
