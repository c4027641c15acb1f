from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Tiers and circles")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.importing.jobs import import_committed
        from crm.models import EngagementEvent, Member, Order
        from segments import privacy, signals

        post_save.connect(signals.member_saved, sender=Member, dispatch_uid="segments.member_saved")
        post_save.connect(signals.order_saved, sender=Order, dispatch_uid="segments.order_saved")
        post_delete.connect(signals.order_saved, sender=Order, dispatch_uid="segments.order_deleted")
        post_save.connect(signals.engagement_saved, sender=EngagementEvent, dispatch_uid="segments.engagement_saved")
        post_delete.connect(signals.engagement_saved, sender=EngagementEvent, dispatch_uid="segments.engagement_deleted")
        import_committed.connect(signals.import_committed, dispatch_uid="segments.import_committed")
        privacy.register()
        from crm.housekeeping import register
        from segments.housekeeping import PRUNERS

        register(*PRUNERS)
        from crm.scoping import SCOPE_EXTENSIONS
        from segments.scoping import tier_scope

        if tier_scope not in SCOPE_EXTENSIONS:
            SCOPE_EXTENSIONS.append(tier_scope)
