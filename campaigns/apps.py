from django.db.backends.signals import connection_created
from django.db.models.signals import post_save
from django.utils.translation import gettext_lazy as _

from crm.apps import PartModelsConfig


class CampaignsConfig(PartModelsConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")
    default_auto_field = "django.db.models.BigAutoField"
    part_models = ("campaigns.journeys.models", "campaigns.worklist.models", "campaigns.dashboard.models", "campaigns.invites.models")  # beside the outbox core's

    def ready(self) -> None:
        from campaigns import privacy, signals, split, tasks  # noqa: F401  tasks: registered for sending's enqueue by name
        from crm.importing.jobs import import_committed
        from crm.models import EngagementEvent, Order

        post_save.connect(signals.order_saved, sender=Order, dispatch_uid="campaigns.order_saved")
        post_save.connect(signals.engagement_saved, sender=EngagementEvent, dispatch_uid="campaigns.engagement_saved")
        import_committed.connect(signals.import_committed, dispatch_uid="campaigns.import_committed")
        privacy.register()
        connection_created.connect(split.register, dispatch_uid="campaigns.split_bucket")
