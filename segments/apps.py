from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Tiers and circles")
    default_auto_field = "django.db.models.BigAutoField"
