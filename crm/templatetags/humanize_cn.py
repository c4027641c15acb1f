from django import template

register = template.Library()


@register.filter
def intcomma_cn(value) -> str:
    """1234567 -> 1,234,567 whatever the language (Django's humanize uses 万 grouping rules only in some locales)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
