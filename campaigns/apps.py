from importlib import import_module

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_save
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")
    default_auto_field = "django.db.models.BigAutoField"
    # The parts of the app keep their models in their own rooms; they are
    # loaded here, after the outbox core's campaigns.models, which imports none
    # of them (their tables keep the app's label and names).
    part_models = ("campaigns.journeys.models", "campaigns.worklist.models", "campaigns.dashboard.models")

    def import_models(self) -> None:
        super().import_models()
        for name in self.part_models:
            import_module(name)

    def ready(self) -> None:
        from campaigns import privacy, signals, split, tasks  # noqa: F401  tasks: registered for sending's enqueue by name
        from crm.importing.jobs import import_committed
        from crm.models import Order

        post_save.connect(signals.order_saved, sender=Order, dispatch_uid="campaigns.order_saved")
        import_committed.connect(signals.import_committed, dispatch_uid="campaigns.import_committed")
        privacy.register()
        connection_created.connect(split.register, dispatch_uid="campaigns.split_bucket")
