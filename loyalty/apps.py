from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = _("Rights and points")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.importing.jobs import import_committed
        from crm.models import EngagementEvent, Member, Order
        from loyalty import privacy, signals
        from loyalty.exports import METRICS_COLUMNS
        from segments.export_columns import register
        from segments.signals import recomputed_from_command

        post_save.connect(signals.member_saved, sender=Member, dispatch_uid="loyalty.member_saved")
        post_save.connect(signals.order_saved, sender=Order, dispatch_uid="loyalty.order_saved")
        post_delete.connect(signals.order_saved, sender=Order, dispatch_uid="loyalty.order_deleted")
        post_save.connect(signals.engagement_saved, sender=EngagementEvent, dispatch_uid="loyalty.engagement_saved")
        post_delete.connect(signals.engagement_saved, sender=EngagementEvent, dispatch_uid="loyalty.engagement_deleted")
        import_committed.connect(signals.import_committed, dispatch_uid="loyalty.import_committed")
        recomputed_from_command.connect(signals.recomputed_from_command, dispatch_uid="loyalty.recomputed_from_command")
        register(METRICS_COLUMNS)
        privacy.register()
        from crm import housekeeping
        from loyalty.housekeeping import PRUNERS

        housekeeping.register(*PRUNERS)
