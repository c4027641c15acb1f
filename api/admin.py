from django.contrib import admin, messages
from django.db import models
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from api import webhooks
from api.keys import clients_revoke
from api.models import ApiClient, ApiUsage, Offer, WebhookEvent


# A URL typed without its scheme is https (the default Django 6 takes; http must be typed).
HTTPS_URLS = {models.URLField: {"assume_scheme": "https"}}


class ApiUsageInline(admin.TabularInline):
    model = ApiUsage
    fields = ("hour", "operation", "calls", "refused")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ("-hour",)
    verbose_name_plural = _("calls in the last hours")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(hour__gte=timezone.now() - timezone.timedelta(hours=48))


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "scopes", "rate_per_minute", "require_signature", "webhook_url", "created_at", "revoked_at", "calls_today")
    list_filter = ("require_signature", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "revoked_at")
    fields = ("name", "prefix", "scopes", "rate_per_minute", "require_signature", "webhook_url", "created_at", "revoked_at")
    actions = ("revoke",)
    inlines = (ApiUsageInline,)
    formfield_overrides = HTTPS_URLS

    def has_add_permission(self, request) -> bool:
        return False  # a key is made with manage.py api_key_create, which shows it once

    @admin.display(description=_("calls today"))
    def calls_today(self, client: ApiClient) -> int:
        start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        return ApiUsage.objects.filter(client=client, hour__gte=start).aggregate(calls=Sum("calls"))["calls"] or 0

    @admin.action(description=_("Revoke the keys of the chosen clients"), permissions=["change"])
    def revoke(self, request, queryset) -> None:
        count = clients_revoke(queryset)
        self.message_user(request, _("%(count)d keys revoked: every server refuses their calls within 10 seconds.") % {"count": count}, messages.SUCCESS)


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ("title", "tier", "starts_on", "ends_on", "position", "active")
    list_filter = ("tier", "active")
    list_editable = ("position", "active")
    search_fields = ("title",)
    formfield_overrides = HTTPS_URLS


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "client", "kind", "status", "attempts", "next_attempt_at", "last_error")
    list_filter = ("status", "kind", "client")
    readonly_fields = ("event_id", "client", "kind", "payload", "status", "attempts", "next_attempt_at", "last_error", "created_at", "delivered_at")
    actions = ("retry",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Send again"), permissions=["change"])
    def retry(self, request, queryset) -> None:
        count = webhooks.retry(queryset)
        self.message_user(request, _("%(count)d events will be sent again.") % {"count": count}, messages.SUCCESS)
