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
    from crm.replica import stale_reads

    request = context.get("request")
    if request is None:
        return {}
    with stale_reads():
        return {**dashboard_context(request.user), "request": request}


@register.inclusion_tag("admin/campaigns/_health.html", takes_context=True)
def background_health(context):
    """The background checks (campaigns.dashboard.health), for those who run the platform."""
    from campaigns.dashboard.health import checks

    request = context.get("request")
    if request is None or not request.user.has_perm("django_celery_beat.view_periodictask"):
        return {}
    found = checks()
    return {"checks": found, "failing": [check for check in found if not check.ok]}


@register.inclusion_tag("admin/campaigns/_history_offer.html", takes_context=True)
def history_offer(context):
    """After a big import of past orders: the offer to rebuild the tier history (campaigns.dashboard.history)."""
    from campaigns.dashboard.history import is_running, suggestion

    request = context.get("request")
    if request is None or not request.user.has_perm("campaigns.add_kpisnapshot") or is_running():
        return {}
    return {"offer": suggestion()}
