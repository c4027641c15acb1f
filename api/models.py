"""The shop's door: its clients and keys, what they called, the answers kept
for an Idempotency-Key, the offers staff set per tier, and the webhook outbox."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from segments.models import Tier


class Scope(models.TextChoices):
    INGEST = "ingest", _("send members, orders and events")
    STANDING = "standing", _("read a member's standing and invites")
    COUPONS = "coupons", _("validate and redeem coupons")
    POINTS = "points", _("redeem points")


class ApiClient(models.Model):
    """One shop system (mini-program, POS, live-stream cart) and its key.

    The key is shown once when made (manage.py api_key_create); only its first
    characters (to find it) and its SHA-256 are kept."""

    name = models.CharField(_("name"), max_length=60, unique=True)
    prefix = models.CharField(_("key prefix"), max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(_("scopes"), default=list, help_text=_("ingest, standing, coupons, points"))
    rate_per_minute = models.PositiveIntegerField(
        _("requests per minute"), default=6000, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    require_signature = models.BooleanField(
        _("require a signed body"), default=False,
        help_text=_("Requests must carry X-Timestamp and X-Signature (HMAC-SHA256 of timestamp.body with the signing secret), at most 5 minutes old."),
    )
    signing_secret = models.CharField(_("signing secret"), max_length=64, editable=False)
    # The secret before the last new one, still taken on requests and sent on webhooks beside the
    # new one until previous_secret_valid_until (a rotation with overlap).
    previous_signing_secret = models.CharField(max_length=64, blank=True, default="", editable=False)
    previous_secret_valid_until = models.DateTimeField(_("previous signing secret works until"), null=True, blank=True, editable=False)
    # The key before the last new one, kept working until previous_valid_until (a rotation
    # with overlap: the shop deploys the new key meanwhile); empty once a key is replaced at once.
    previous_prefix = models.CharField(max_length=12, unique=True, null=True, blank=True, editable=False)
    previous_key_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    previous_valid_until = models.DateTimeField(_("previous key works until"), null=True, blank=True, editable=False)
    webhook_url = models.URLField(_("webhook URL"), blank=True, help_text=_("Tier changes and new coupons are posted here, signed with the signing secret."))
    # What the webhook collector has already turned into events for this client.
    tier_change_cursor = models.BigIntegerField(default=0, editable=False)
    coupon_cursor = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        unknown = sorted(set(self.scopes or []) - set(Scope.values))
        if not isinstance(self.scopes, list) or unknown:
            raise ValidationError({"scopes": _("Unknown scopes: %(scopes)s. Use %(known)s.") % {"scopes": ", ".join(unknown), "known": ", ".join(Scope.values)}})

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def previous_secret(self, now=None) -> str:
        """The secret before the last new one while its overlap lasts, else ''."""
        until = self.previous_secret_valid_until
        return self.previous_signing_secret if until and until > (now or timezone.now()) else ""


class ApiUsage(models.Model):
    """Calls per client, operation and hour (counted in each server process and added up here every few seconds)."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="usage", verbose_name=_("client"))
    operation = models.CharField(_("operation"), max_length=60)
    hour = models.DateTimeField(_("hour"))
    calls = models.PositiveIntegerField(_("calls"), default=0)
    refused = models.PositiveIntegerField(_("refused (4xx)"), default=0)

    class Meta:
        verbose_name = _("API usage")
        verbose_name_plural = _("API usage")
        ordering = ("-hour", "client", "operation")
        constraints = [models.UniqueConstraint(fields=["client", "operation", "hour"], name="api_usage_unique")]


class IdempotentAnswer(models.Model):
    """The first answer to a request with an Idempotency-Key, replayed for a retry."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)
    operation = models.CharField(max_length=60)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the body: the same key with another body is refused
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="api_idempotency_unique")]


class Offer(models.Model):
    """What the shop shows the members of a tier (千人千面): a banner and a product list, within dates."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="offers", verbose_name=_("tier"))
    title = models.CharField(_("banner text"), max_length=100)
    image_url = models.URLField(_("image URL"), blank=True)
    products = models.JSONField(_("products (SKUs)"), default=list, blank=True, help_text=_("A list of SKUs, in the order shown."))
    starts_on = models.DateField(_("from"), default=timezone.localdate)
    ends_on = models.DateField(_("until (inclusive)"), null=True, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("tier offer")
        verbose_name_plural = _("tier offers")
        ordering = ("tier", "position", "id")
        indexes = [models.Index(fields=["tier", "active"], name="api_offer_tier_idx")]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.ends_on and self.starts_on and self.ends_on < self.starts_on:
            raise ValidationError({"ends_on": _("The offer cannot end before it starts.")})
        if not isinstance(self.products, list) or not all(isinstance(sku, str) and sku.strip() for sku in self.products):
            raise ValidationError({"products": _("Give a list of SKUs, e.g. [\"SKU001\", \"SKU002\"].")})


class WebhookStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    DELIVERED = "delivered", _("delivered")
    FAILED = "failed", _("gave up")


class WebhookEvent(models.Model):
    """One event for one client, posted until the client answers 2xx (the outbox)."""

    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="events", verbose_name=_("client"))
    kind = models.CharField(_("kind"), max_length=30)
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=10, choices=WebhookStatus.choices, default=WebhookStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ("-id",)
        indexes = [
            models.Index(fields=["next_attempt_at"], name="api_webhook_due_idx", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_id}"
