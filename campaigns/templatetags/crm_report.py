from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key, 0)


@register.filter
def percent(value) -> str:
    """0.1234 -> 12.3%; None -> —."""
    if value is None:
        return "—"
    return f"{value * 100:.1f}%"


@register.filter
def percent_points(value) -> str:
    """A difference of two rates in percentage points: +2.1pp."""
    if value is None:
        return "—"
    return f"{value * 100:+.1f}pp"


@register.inclusion_tag("admin/campaigns/dashboard.html", takes_context=True)
def dashboard(context):
    """The admin home's dashboard, for what the user may see (campaigns.dashboard.home)."""
    from campaigns.dashboard.home import dashboard_context

    request = context.get("request")
    return {**dashboard_context(request.user), "request": request} if request is not None else {}
