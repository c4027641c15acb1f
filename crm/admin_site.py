"""The admin's first screen: the work first (members, tiers, points, campaigns,
the shop's API), the machinery after it (users, periodic tasks), and the
sections staff never use (django-axes' login logs, Celery's task results)
shown to superusers only, under names in the user's language (those packages
name them in English only)."""

from __future__ import annotations

import time

from django.urls import get_script_prefix
from django.utils.translation import get_language, gettext_lazy as _

OUR_APPS = ["crm", "segments", "loyalty", "campaigns", "api"]
SUPERUSER_ONLY_APPS = {"axes", "django_celery_results"}
SECTION_NAMES = {"axes": _("Login security"), "django_celery_results": _("Background task results")}
MODEL_NAMES = {
    ("axes", "AccessAttempt"): _("Failed login attempts"),
    ("axes", "AccessFailureLog"): _("Failed login log"),
    ("axes", "AccessLog"): _("Login log"),
    ("django_celery_results", "GroupResult"): _("Task group results"),
    ("django_celery_results", "TaskResult"): _("Task results"),
}


def arrange(site) -> None:
    for model, model_admin in site._registry.items():
        if model._meta.app_label in SUPERUSER_ONLY_APPS:
            model_admin.has_module_permission = _superuser_only
            for name in ("has_view_permission", "has_change_permission", "has_delete_permission", "has_add_permission"):
                setattr(model_admin, name, _superuser_only_object)
    get_app_list = site.get_app_list
    rank = {label: position for position, label in enumerate(OUR_APPS)}

    def ordered(request, app_label=None):
        key = _menu_key(request, app_label)
        kept = _menus.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        apps = get_app_list(request, app_label)
        for app in apps:
            app["name"] = SECTION_NAMES.get(app["app_label"], app["name"])
            for model in app["models"]:
                model["name"] = MODEL_NAMES.get((app["app_label"], model["object_name"]), model["name"])
        apps.sort(key=lambda app: (rank.get(app["app_label"], len(OUR_APPS)), str(app["name"])))
        if len(_menus) > MENUS_KEPT:
            _menus.clear()
        _menus[key] = (time.monotonic() + MENU_SECONDS, apps)
        return apps

    site.get_app_list = ordered


# The menu (every page's sidebar and the index) asks each of 60 model admins for its permissions
# and reverses two URLs for each: 9% of a list page's CPU. It is kept per process for a user's
# exact permissions and language, so a change of either shows at once.
MENU_SECONDS = 300
MENUS_KEPT = 1000
_menus: dict[tuple, tuple[float, list]] = {}


def _menu_key(request, app_label) -> tuple:
    user = request.user
    perms = frozenset() if user.is_superuser or not user.is_active else frozenset(user.get_all_permissions())
    return (user.pk, user.is_active, user.is_staff, user.is_superuser, perms, get_language(), get_script_prefix(), app_label)


def _superuser_only(request) -> bool:
    return request.user.is_active and request.user.is_superuser


def _superuser_only_object(request, obj=None) -> bool:
    return request.user.is_active and request.user.is_superuser
