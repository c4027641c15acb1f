"""Templates, campaigns, variants, deliveries (the outbox), coupons, the sending
policy and the inbound replies that withdraw consent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import AgeBand, Category, Channel, Gender, Member, Order, Product, SingletonRow
from crm.validators import coupon_days_field
from segments.models import Circle, Tier

from campaigns.templating import template_validate


class Purpose(models.TextChoices):
    MARKETING = "marketing", _("marketing")
    SERVICE = "service", _("service (not capped, no unsubscribe line)")


class SalutationRule(models.Model):
    """How a member is addressed: surname + suffix for a gender and age band (张 + 阿姨)."""

    gender = models.CharField(_("gender"), max_length=1, choices=Gender.choices, blank=True, help_text=_("Empty: any."))
    age_band = models.CharField(_("age band"), max_length=5, choices=AgeBand.choices, blank=True, help_text=_("Empty: any."))
    suffix = models.CharField(_("form of address"), max_length=10, help_text=_("Follows the surname: 阿姨, 姐, 先生, 叔."))
    priority = models.PositiveSmallIntegerField(_("priority"), default=10, help_text=_("Higher rules are tried first."))

    class Meta:
        verbose_name = _("form of address")
        verbose_name_plural = _("forms of address")
        ordering = ("-priority", "id")

    def __str__(self) -> str:
        return f"{self.get_gender_display() if self.gender else '*'} / {self.get_age_band_display() if self.age_band else '*'} → {self.suffix}"


class BannedWord(models.Model):
    """Words a template may not contain (Advertising Law art. 9: absolute terms)."""

    word = models.CharField(_("word"), max_length=30, unique=True)
    note = models.CharField(_("note"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("banned word")
        verbose_name_plural = _("banned words")
        ordering = ("word",)

    def __str__(self) -> str:
        return self.word


RATE_HELP = _("Shared by all workers; 0: no limit.")


class SendingPolicy(SingletonRow):
    """The one row of sending rules; staff edit it in the admin."""

    cap_messages = models.PositiveSmallIntegerField(
        _("marketing messages per member"), default=3, validators=[MinValueValidator(1)],
        help_text=_("Across all channels; service messages do not count."),
    )
    cap_days = models.PositiveSmallIntegerField(_("in rolling days"), default=7, validators=[MinValueValidator(1)])
    quiet_start = models.TimeField(_("quiet hours start"), default=dt.time(20, 0))
    quiet_end = models.TimeField(_("quiet hours end"), default=dt.time(8, 0))
    usual_hour = models.BooleanField(
        _("send at the member's usual order hour"), default=True,
        help_text=_("When known and outside quiet hours, a marketing message waits for the member's usual hour (within a day)."),
    )
    sms_unsubscribe = models.CharField(_("SMS unsubscribe line"), max_length=20, default="拒收请回复R")
    rate_sms = models.PositiveIntegerField(_("SMS per second"), default=5000, help_text=RATE_HELP)
    rate_wecom = models.PositiveIntegerField(_("WeCom messages per second"), default=1000, help_text=RATE_HELP)
    rate_email = models.PositiveIntegerField(_("emails per second"), default=200, help_text=RATE_HELP)
    rate_push = models.PositiveIntegerField(_("pushes per second"), default=5000, help_text=RATE_HELP)
    max_attempts = models.PositiveSmallIntegerField(_("attempts on transient errors"), default=4, validators=[MinValueValidator(1)])
    stale_minutes = models.PositiveSmallIntegerField(
        _("re-enqueue after minutes"), default=10, validators=[MinValueValidator(1)],
        help_text=_(
            "A message queued this long without being sent is handed to a worker again; one handed to the gateway "
            "this long without an outcome waits for reconciliation."
        ),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("sending policy")
        verbose_name_plural = _("sending policy")

    def __str__(self) -> str:
        return str(_("sending policy"))

    def rate_for(self, channel: str) -> int:
        return getattr(self, f"rate_{channel}", 1000)


class MessageTemplate(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.SMS)
    purpose = models.CharField(_("purpose"), max_length=10, choices=Purpose.choices, default=Purpose.MARKETING)
    subject = models.CharField(_("subject"), max_length=120, blank=True, help_text=_("Email only."))
    body = models.TextField(
        _("text"), help_text=_("Django template syntax over the variables listed below, e.g. {{ salutation }}，{{ usual_product }}补货啦。")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("author")
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        template_validate("body", self.body, self.subject)


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    AWAITING = "awaiting", _("awaiting approval")
    SCHEDULED = "scheduled", _("scheduled")
    SENDING = "sending", _("sending")
    DONE = "done", _("done")
    CANCELLED = "cancelled", _("cancelled")
    JOURNEY = "journey", _("a journey's step")


class CouponKind(models.TextChoices):
    AMOUNT = "amount", _("no-threshold amount (无门槛)")
    SPEND_SAVE = "spend_save", _("spend X save Y (满减)")
    PERCENT = "percent", _("percentage off")
    CATEGORY = "category", _("amount off one category")


def conversion_days_field() -> models.PositiveSmallIntegerField:
    """A campaign's conversion window, and a journey's, which its steps' campaigns take."""
    return models.PositiveSmallIntegerField(
        _("conversion window (days)"), default=7, validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text=_("A paid order after the message, dated at most this many calendar days after the day it was sent, converts it."),
    )


class CouponTerms(models.Model):
    """What a per-member coupon gives; a campaign and a journey step both carry one."""

    coupon_kind = models.CharField(_("coupon"), max_length=10, choices=CouponKind.choices, blank=True)
    coupon_value = models.DecimalField(_("coupon value ¥"), max_digits=8, decimal_places=2, null=True, blank=True)
    coupon_threshold = models.DecimalField(_("minimum spend ¥"), max_digits=8, decimal_places=2, null=True, blank=True)
    coupon_percent = models.PositiveSmallIntegerField(
        _("percent off"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(90)]
    )
    coupon_category = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("coupon category")
    )
    coupon_days = coupon_days_field(default=7)

    class Meta:
        abstract = True

    def coupon_describe(self) -> str:
        return Coupon(
            kind=self.coupon_kind, value=self.coupon_value, threshold=self.coupon_threshold,
            percent=self.coupon_percent, category=self.coupon_category,
        ).describe()


class Campaign(CouponTerms):
    name = models.CharField(_("name"), max_length=100, unique=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.SMS)
    purpose = models.CharField(_("purpose"), max_length=10, choices=Purpose.choices, default=Purpose.MARKETING)
    status = models.CharField(_("status"), max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT, db_index=True)
    target_tiers = models.ManyToManyField(Tier, blank=True, related_name="+", verbose_name=_("tiers"))
    target_circles = models.ManyToManyField(Circle, blank=True, related_name="+", verbose_name=_("circles"))
    exclude_tiers = models.ManyToManyField(Tier, blank=True, related_name="+", verbose_name=_("except tiers"))
    exclude_circles = models.ManyToManyField(Circle, blank=True, related_name="+", verbose_name=_("except circles"))
    target_product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("buyers of product"),
        help_text=_("A restock or offer reminder: members who bought this product (within the tiers and circles, when chosen)."),
    )
    target_product_days = models.PositiveSmallIntegerField(
        _("bought within days"), default=90, validators=[MinValueValidator(1), MaxValueValidator(730)]
    )
    control_share = models.PositiveSmallIntegerField(
        _("control group %"), default=0, validators=[MaxValueValidator(50)],
        help_text=_("Members held back at random (no message), to measure the uplift."),
    )
    conversion_days = conversion_days_field()
    send_at = models.DateTimeField(_("send at"), null=True, blank=True, help_text=_("Empty: when approved."))
    crontab = models.ForeignKey(
        "django_celery_beat.CrontabSchedule", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("repeat"), help_text=_("A repeating campaign reaches each member who newly enters its audience."),
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("author")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("approved by")
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    last_launched_at = models.DateTimeField(_("last launched"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ("-created_at",)
        permissions = [("approve_campaign", _("Can approve campaigns (never one's own)"))]

    def __str__(self) -> str:
        return self.name

    @property
    def is_marketing(self) -> bool:
        return self.purpose == Purpose.MARKETING

    @property
    def editable(self) -> bool:
        return self.status == CampaignStatus.DRAFT


class Variant(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants", verbose_name=_("campaign"))
    label = models.CharField(_("label"), max_length=10, default="A")
    template = models.ForeignKey(MessageTemplate, on_delete=models.PROTECT, related_name="+", verbose_name=_("template"))
    share = models.PositiveSmallIntegerField(
        _("share %"), default=100, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Of the members who are sent; the shares of all variants add up to 100."),
    )

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ("campaign", "label")
        constraints = [models.UniqueConstraint(fields=["campaign", "label"], name="variant_label_unique")]

    def __str__(self) -> str:
        return f"{self.campaign} · {self.label}"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("handed to the gateway")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    UNKNOWN = "unknown", _("outcome unknown: reconcile")
    SKIPPED = "skipped", _("skipped")
    CONTROL = "control", _("control group (not sent)")


# Rows a worker still has to finish: queued, or handed to the gateway with no outcome yet.
PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
TERMINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.CONTROL, DeliveryStatus.UNKNOWN)


class SkipReason(models.TextChoices):
    # In the order the checks are made (the dry run's funnel shows them so).
    OPTED_OUT = "opted_out", _("opted out of personalised marketing")
    NO_CONTACT = "no_contact", _("no contact on the channel")
    NO_CONSENT = "no_consent", _("no consent for the channel")
    CAP = "cap", _("frequency cap reached")
    CANCELLED = "cancelled", _("campaign cancelled")
    EXITED = "exited", _("left the journey")


# The outbox's references are kept by the code, not by foreign key constraints
# in the database: PostgreSQL checks such a constraint row by row and locks the
# referenced row, so a million-member launch locked (and rewrote) every member
# row and spent 17 s of its commit in the checks, and every coupon made locked
# its member and its delivery again. The rows are only written from rows that
# exist (the launch selects its members, campaign and variants in the same
# statement), and Django's deletion still cascades (on_delete) as before.
class Delivery(models.Model):
    """One message of one campaign to one member: the outbox row and its outcome."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("campaign"), db_constraint=False
    )
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("member"), db_index=False, db_constraint=False
    )
    variant = models.ForeignKey(
        Variant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("variant"), db_constraint=False
    )
    # A journey step's message belongs to one enrolment: the same step reaches a
    # member once per enrolment (a birthday every year), a campaign once ever.
    enrolment = models.ForeignKey(
        "Enrolment", on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries", verbose_name=_("journey enrolment"),
        db_index=False,  # delivery_enrolment_idx: campaign rows (no enrolment) stay out of it
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    is_marketing = models.BooleanField(_("marketing"), default=True)
    status = models.CharField(_("status"), max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    skip_reason = models.CharField(_("skipped because"), max_length=12, choices=SkipReason.choices, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    due_at = models.DateTimeField(_("due at"))
    enqueued_at = models.DateTimeField(_("handed to a worker at"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    provider_id = models.CharField(_("gateway message id"), max_length=100, blank=True)
    error = models.CharField(_("error"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "member"], condition=models.Q(enrolment__isnull=True), name="delivery_campaign_member_unique"
            ),
            models.UniqueConstraint(
                fields=["campaign", "enrolment"], condition=models.Q(enrolment__isnull=False), name="delivery_step_enrolment_unique"
            ),
        ]
        # Each write of a row (the launch, the claim, the outcome) adds an entry to
        # every index whose condition the row meets: the sent, skipped and control
        # rows, nearly all of a big campaign, leave the status index, and campaign
        # rows never enter the enrolment index.
        indexes = [
            models.Index(
                fields=["status", "due_at"], name="delivery_open_due_idx",
                condition=models.Q(status__in=["queued", "sending", "unknown", "failed"]),
            ),
            models.Index(fields=["member", "sent_at"], name="delivery_member_sent_idx"),
            models.Index(fields=["enrolment"], name="delivery_enrolment_idx", condition=models.Q(enrolment__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} → {self.member}"


class Coupon(models.Model):
    # Unique by a constraint, not unique=True: that adds a LIKE index too, which
    # an exact code never needs; a coupon's order and category are mostly empty
    # and indexed only where set (every index is written by each coupon made).
    code = models.CharField(_("code"), max_length=20)
    # No database constraints on these three, for the reason above Delivery.
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="coupons", verbose_name=_("member"), db_index=False, db_constraint=False
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="coupons", verbose_name=_("campaign"), db_constraint=False
    )
    delivery = models.OneToOneField(
        Delivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="coupon", verbose_name=_("delivery"), db_constraint=False
    )
    kind = models.CharField(_("kind"), max_length=10, choices=CouponKind.choices)
    value = models.DecimalField(_("value ¥"), max_digits=8, decimal_places=2, null=True, blank=True)
    threshold = models.DecimalField(_("minimum spend ¥"), max_digits=8, decimal_places=2, null=True, blank=True)
    percent = models.PositiveSmallIntegerField(_("percent off"), null=True, blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("category"), db_index=False
    )
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("order"), db_index=False
    )
    # The shop's order number when the shop redeemed it at checkout (the API), before the order reached the CRM.
    redeemed_order_no = models.CharField(_("redeemed on order"), max_length=64, blank=True, db_default="")  # the outbox inserts coupons in SQL

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        constraints = [
            models.UniqueConstraint(fields=["code"], name="coupon_code_unique"),
            models.UniqueConstraint(fields=["order"], name="coupon_order_unique", condition=models.Q(order__isnull=False)),
        ]
        indexes = [
            models.Index(fields=["member", "valid_until"], name="coupon_member_idx"),
            models.Index(fields=["category"], name="coupon_category_idx", condition=models.Q(category__isnull=False)),
        ]

    def __str__(self) -> str:
        return self.code

    def state(self) -> str:
        return _("redeemed") if self.redeemed_at else (_("expired") if self.valid_until < timezone.now() else _("valid"))

    def describe(self) -> str:
        """What the coupon gives, as a member reads it: ¥10无门槛券, 满59减15券, 8.5折券, 生鲜¥5券."""
        if self.kind == CouponKind.PERCENT:
            return f"{(100 - (self.percent or 0)) / 10:g}折券"
        value = _yuan(self.value)
        if self.kind == CouponKind.SPEND_SAVE:
            return f"满{_yuan(self.threshold)}减{value}券"
        if self.kind == CouponKind.CATEGORY and self.category_id:
            return f"{self.category.name}¥{value}券"
        return f"¥{value}无门槛券"


def _yuan(amount) -> str:
    return f"{Decimal(str(amount or 0)).normalize():f}"


class InboundReply(models.Model):
    """A reply a gateway forwarded (or a file of replies): kept as proof of an unsubscribe."""

    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    mobile = models.CharField(_("mobile"), max_length=11)
    text = models.CharField(_("text"), max_length=500)
    member = models.ForeignKey(Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("member"))
    unsubscribed = models.BooleanField(_("unsubscribed"), default=False)
    source = models.CharField(_("source"), max_length=40)

    class Meta:
        verbose_name = _("inbound reply")
        verbose_name_plural = _("inbound replies")
        ordering = ("-received_at",)

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M} {self.text[:20]}"
