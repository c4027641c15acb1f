"""The admin's first screen: the work first (members, tiers, points, campaigns,
the shop's API), the machinery after it (users, periodic tasks), and the
sections staff never use (django-axes' login logs, Celery's task results)
shown to superusers only."""

from __future__ import annotations

OUR_APPS = ["crm", "segments", "loyalty", "campaigns", "api"]
SUPERUSER_ONLY_APPS = {"axes", "django_celery_results"}


def arrange(site) -> None:
    for model, model_admin in site._registry.items():
        if model._meta.app_label in SUPERUSER_ONLY_APPS:
            model_admin.has_module_permission = _superuser_only
            for name in ("has_view_permission", "has_change_permission", "has_delete_permission", "has_add_permission"):
                setattr(model_admin, name, _superuser_only_object)
    get_app_list = site.get_app_list

    def ordered(request, app_label=None):
        apps = get_app_list(request, app_label)
        rank = {label: position for position, label in enumerate(OUR_APPS)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(OUR_APPS)), str(app["name"])))

    site.get_app_list = ordered


def _superuser_only(request) -> bool:
    return request.user.is_active and request.user.is_superuser


def _superuser_only_object(request, obj=None) -> bool:
    return request.user.is_active and request.user.is_superuser
