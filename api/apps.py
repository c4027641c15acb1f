from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = _("Shop API")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from api.housekeeping import PRUNERS
        from crm.housekeeping import register

        register(*PRUNERS)
