from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Sum
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from api import webhooks
from api.keys import client_create, client_rekey, client_resecret, clients_revoke
from api.models import ApiClient, ApiUsage, Offer, Scope, WebhookEvent


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


def scope_names(client: ApiClient) -> str:
    labels = dict(Scope.choices)
    return "、".join(str(labels.get(scope, scope)) for scope in client.scopes)


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(label=_("scopes"), choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiClient
        fields = ("scopes",)  # the admin adds the others, with its overrides (https URLs)


class RotationForm(forms.Form):
    """How long the present key (or signing secret) keeps working beside the new one."""

    OVERLAPS = {"0": None, "1h": timezone.timedelta(hours=1), "24h": timezone.timedelta(hours=24), "7d": timezone.timedelta(days=7)}
    overlap = forms.ChoiceField(
        choices=[
            ("0", _("stops at once (the key was lost or leaked)")),
            ("1h", _("keeps working for 1 hour")),
            ("24h", _("keeps working for 24 hours (a routine rotation: deploy the new key meanwhile)")),
            ("7d", _("keeps working for 7 days")),
        ],
        initial="0",
        required=False,  # nothing chosen: at once, the safe side
        widget=forms.RadioSelect,
    )


@dataclass(frozen=True)
class Rotation:
    """A new key or a new signing secret: what makes it and what the pages say."""

    rotate: Callable[..., str]
    field: str
    label: str
    title: str
    revoked: str
    template: str


ROTATIONS = {
    "key": Rotation(
        client_rekey, "key", _("the present key"), _("A new key for %(name)s"),
        _("A revoked client gets no new key: add a new client."), "admin/api/apiclient/rekey.html",
    ),
    "secret": Rotation(
        client_resecret, "signing secret", _("the present signing secret"), _("A new signing secret for %(name)s"),
        _("A revoked client gets no new signing secret: add a new client."), "admin/api/apiclient/resecret.html",
    ),
}


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """A shop system's client. Adding one makes its key and shows it once, with the signing
    secret, on the page after the save (as manage.py api_key_create prints them): only the key's
    hash is kept."""

    form = ApiClientForm
    list_display = ("name", "prefix", "scope_list", "rate_per_minute", "require_signature", "webhook_url", "created_at", "revoked_at", "calls_today")
    list_filter = ("require_signature", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "previous_key", "previous_secret", "created_at", "revoked_at")
    fields = (
        "name", "prefix", "previous_key", "scopes", "rate_per_minute", "require_signature", "webhook_url", "previous_secret", "created_at", "revoked_at",
    )
    actions = ("revoke",)
    inlines = (ApiUsageInline,)
    formfield_overrides = HTTPS_URLS

    add_fields = ("name", "scopes", "rate_per_minute", "require_signature", "webhook_url")

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        client, key = client_create(name=data["name"], scopes=data["scopes"], rate_per_minute=data["rate_per_minute"],
                                    require_signature=data["require_signature"], webhook_url=data["webhook_url"])
        obj.pk, obj.prefix = client.pk, client.prefix
        obj._state.adding = False
        request._api_key = key  # for response_add, this response only

    def response_add(self, request, obj, post_url_continue=None):
        return self._key_once(request, ApiClient.objects.get(pk=obj.pk), request._api_key)

    def _key_once(self, request, client: ApiClient, key: str | None):
        """The page that shows a new key (and the signing secret) once; key None: a new signing secret only."""
        context = {
            **self.admin_site.each_context(request),
            "title": (_("The key of %(name)s") if key else _("The signing secret of %(name)s")) % {"name": client.name},
            "opts": self.opts,
            "client": client,
            "scopes": scope_names(client),
            "key": key,
        }
        return TemplateResponse(request, "admin/api/apiclient/key_once.html", context)  # never cached: an admin view

    def get_urls(self):
        rekey = path("<int:client_id>/rekey/", self.admin_site.admin_view(self.rekey_view), name="api_apiclient_rekey")
        resecret = path("<int:client_id>/resecret/", self.admin_site.admin_view(self.resecret_view), name="api_apiclient_resecret")
        return [rekey, resecret, *super().get_urls()]

    def rekey_view(self, request, client_id: int):
        """A new key, at once (lost or leaked) or with an overlap (a routine rotation): asked, then shown once."""
        return self._rotation_view(request, client_id, ROTATIONS["key"])

    def resecret_view(self, request, client_id: int):
        """A new signing secret, at once (leaked) or with an overlap (a routine rotation): asked, then shown once."""
        return self._rotation_view(request, client_id, ROTATIONS["secret"])

    def _rotation_view(self, request, client_id: int, rotation: Rotation):
        client = get_object_or_404(ApiClient, pk=client_id)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        change_url = reverse("admin:api_apiclient_change", args=[client.pk])
        if not client.active:
            self.message_user(request, rotation.revoked, messages.ERROR)
            return HttpResponseRedirect(change_url)
        form = RotationForm(request.POST if request.method == "POST" else None)
        form.fields["overlap"].label = rotation.label
        if request.method == "POST" and form.is_valid():
            made = rotation.rotate(client, overlap=RotationForm.OVERLAPS[form.cleaned_data["overlap"] or "0"])
            self.log_change(request, client, [{"changed": {"fields": [rotation.field]}}])
            return self._key_once(request, client, made if rotation.field == "key" else None)
        context = {**self.admin_site.each_context(request), "title": rotation.title % {"name": client.name},
                   "opts": self.opts, "client": client, "change_url": change_url, "form": form}
        return TemplateResponse(request, rotation.template, context)

    @admin.display(description=_("previous signing secret"))
    def previous_secret(self, client: ApiClient) -> str:
        until = client.previous_secret_valid_until
        if not client.previous_signing_secret or not until:
            return "-"
        shown = admin.utils.display_for_value(until, "-")
        if until <= timezone.now():
            return _("stopped at %(until)s") % {"until": shown}
        return _("still taken, and signed on webhooks as X-Signature-Previous, until %(until)s") % {"until": shown}

    @admin.display(description=_("previous key"))
    def previous_key(self, client: ApiClient) -> str:
        if not client.previous_prefix or not client.previous_valid_until:
            return "-"
        until = admin.utils.display_for_value(client.previous_valid_until, "-")
        if client.previous_valid_until <= timezone.now():
            return _("%(prefix)s: stopped at %(until)s") % {"prefix": client.previous_prefix, "until": until}
        return _("%(prefix)s: works until %(until)s, beside the new key") % {"prefix": client.previous_prefix, "until": until}

    @admin.display(description=_("scopes"))
    def scope_list(self, client: ApiClient) -> str:
        return scope_names(client)

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
