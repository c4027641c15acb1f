import datetime as dt

from importlib import import_module

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _sqlite_datetime(value: dt.datetime) -> str:
    """An aware datetime as SQLite stores it (UTC, no offset), so that raw SQL compares like the ORM."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(" ")


class PartModelsConfig(AppConfig):
    """An app whose parts keep their models in their own subpackages: Django imports
    only <app>.models, so these load right after it. <app>.models imports none of
    them (no ring), and their tables keep the app's label and names."""

    part_models: tuple[str, ...] = ()

    def import_models(self) -> None:
        super().import_models()
        for name in self.part_models:
            import_module(name)


class CrmConfig(PartModelsConfig):
    name = "crm"
    verbose_name = _("Members and orders")
    default_auto_field = "django.db.models.BigAutoField"
    part_models = ("crm.importing.models",)  # the import screens' models, beside their engine

    def ready(self) -> None:
        # Django's SQLite adapter writes an aware datetime with its offset
        # ("… 00:00:00+08:00"); stored values are UTC without one, and text
        # comparison then shifts every raw-SQL time window by the offset.
        import sqlite3

        import django.db.backends.sqlite3.base  # noqa: F401 - its adapter first, then ours over it

        sqlite3.register_adapter(dt.datetime, _sqlite_datetime)

        from django.db.models.signals import post_delete

        from crm.models import EngagementEvent, Order, row_deleted

        post_delete.connect(row_deleted, sender=Order, dispatch_uid="crm.order_deleted")
        post_delete.connect(row_deleted, sender=EngagementEvent, dispatch_uid="crm.event_deleted")

        from crm import housekeeping

        housekeeping.register(housekeeping.SESSIONS, housekeeping.IMPORT_ERRORS)
