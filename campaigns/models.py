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

from crm.models import AgeBand, Category, Channel, Community, Gender, GroupLeader, Member, Order, Product, SingletonRow
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
    coupon_days = models.PositiveSmallIntegerField(
        _("coupon valid days"), default=7, validators=[MinValueValidator(7), MaxValueValidator(14)]
    )

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
    conversion_days = models.PositiveSmallIntegerField(
        _("conversion window (days)"), default=7, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
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


# Journeys: a trigger enrols a member, and each step is sent on its day through
# the same outbox as campaigns (each step owns a hidden campaign of status
# "journey", so consent, the cap, quiet hours, coupons and reports all hold).


class JourneyTrigger(models.TextChoices):
    FIRST_ORDER = "first_order", _("first order")
    NO_ORDER = "no_order", _("registered without an order for some days")
    CIRCLE = "circle", _("entered a circle (e.g. became dormant)")
    TIER_UP = "tier_up", _("moved up a tier")
    BIRTHDAY = "birthday", _("birthday")
    POINTS_DUE = "points_due", _("points expiring within 30 days")


class Journey(models.Model):
    name = models.CharField(_("name"), max_length=60, unique=True)
    trigger = models.CharField(_("starts on"), max_length=12, choices=JourneyTrigger.choices)
    trigger_days = models.PositiveSmallIntegerField(
        _("days without an order"), default=7, validators=[MinValueValidator(1)], help_text=_("Only for “registered without an order”.")
    )
    trigger_circle = models.ForeignKey(
        Circle, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("circle"),
        help_text=_("Only for “entered a circle”."),
    )
    priority = models.PositiveSmallIntegerField(
        _("precedence"), default=0,
        help_text=_("0: runs alongside any other journey. Above 0: a member follows one such journey at a time; "
                    "entering one of higher precedence ends the lower one, and a lower one does not start."),
    )
    exit_on_order = models.BooleanField(_("ends when the member orders"), default=False)
    exit_on_consent = models.BooleanField(_("ends when consent is withdrawn"), default=True)
    exit_on_tier_left = models.BooleanField(_("ends when the member leaves the tier"), default=False, help_text=_("For tier-up journeys."))
    control_share = models.PositiveSmallIntegerField(
        _("control group %"), default=0, validators=[MaxValueValidator(50)],
        help_text=_("Enrolled members held back at random from every step, to measure the uplift."),
    )
    conversion_days = models.PositiveSmallIntegerField(
        _("conversion window (days)"), default=7, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
    catch_up_days = models.PositiveSmallIntegerField(
        _("catch up days"), default=2, validators=[MaxValueValidator(30)],
        help_text=_("A trigger this many days old still enrols (after downtime); older ones never do, "
                    "so switching a journey on does not reach the whole base at once."),
    )
    active = models.BooleanField(_("active"), default=True)
    description = models.TextField(_("what it is for"), blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        ordering = ("-priority", "name")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.trigger == JourneyTrigger.CIRCLE and not self.trigger_circle_id:
            raise ValidationError({"trigger_circle": _("choose the circle whose new members start this journey")})


class JourneyStep(CouponTerms):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="steps", verbose_name=_("journey"))
    day = models.PositiveSmallIntegerField(_("day"), help_text=_("Days after the trigger (0: the same day)."))
    template = models.ForeignKey(MessageTemplate, on_delete=models.PROTECT, related_name="+", verbose_name=_("template"))
    campaign = models.OneToOneField(Campaign, on_delete=models.PROTECT, null=True, editable=False, related_name="journey_step")

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ("journey", "day")
        constraints = [models.UniqueConstraint(fields=["journey", "day"], name="journey_step_day_unique")]

    def __str__(self) -> str:
        return f"{self.journey} · D{self.day}"

    def save(self, *args, **kwargs) -> None:
        """Keep the step's own campaign (what the outbox sends and the report reads) in step."""
        from django.db import transaction

        with transaction.atomic():
            terms = {f.attname: getattr(self, f.attname) for f in CouponTerms._meta.fields}
            values = {
                "name": f"旅程 {self.journey.name} · D{self.day}"[:100],
                "channel": self.template.channel,
                "purpose": self.template.purpose,
                "status": CampaignStatus.JOURNEY,
                "conversion_days": self.journey.conversion_days,
                **terms,
            }
            if self.campaign_id is None:
                self.campaign = Campaign.objects.create(**values)
            else:
                Campaign.objects.filter(pk=self.campaign_id).update(**values)
            super().save(*args, **kwargs)
            Variant.objects.update_or_create(campaign_id=self.campaign_id, label="A", defaults={"template": self.template, "share": 100})


class EnrolmentStatus(models.TextChoices):
    ACTIVE = "active", _("in the journey")
    DONE = "done", _("completed")
    EXITED = "exited", _("left early")


class ExitReason(models.TextChoices):
    ORDERED = "ordered", _("ordered again")
    CONSENT = "consent", _("consent withdrawn")
    LEFT_TIER = "left_tier", _("left the tier")
    SUPERSEDED = "superseded", _("entered a journey of higher precedence")
    STOPPED = "stopped", _("journey switched off or member erased")


class Enrolment(models.Model):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrolments", verbose_name=_("journey"))
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="enrolments", verbose_name=_("member"), db_index=False)
    # What started it, so one trigger enrols once: first_order, birthday:2026, tierchange:812, circle:1763280000.
    key = models.CharField(_("trigger"), max_length=40)
    started_at = models.DateTimeField(_("triggered at"), help_text=_("Step days count from here."))
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now)
    status = models.CharField(_("status"), max_length=8, choices=EnrolmentStatus.choices, default=EnrolmentStatus.ACTIVE)
    next_step = models.ForeignKey(
        JourneyStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("next step")
    )
    is_control = models.BooleanField(_("control group"), default=False)
    tier = models.ForeignKey(Tier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("tier entered"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    exit_reason = models.CharField(_("left because"), max_length=10, choices=ExitReason.choices, blank=True)

    class Meta:
        verbose_name = _("enrolment")
        verbose_name_plural = _("enrolments")
        ordering = ("-enrolled_at",)
        constraints = [
            models.UniqueConstraint(fields=["member", "journey", "key"], name="enrolment_trigger_once"),
            models.UniqueConstraint(
                fields=["member", "journey"], condition=models.Q(status="active"), name="enrolment_one_active_per_journey"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_step", "started_at"], name="enrolment_due_idx")]

    def __str__(self) -> str:
        return f"{self.journey} · {self.member}"


# The group leader's worklist: built each morning, ticked off during the day.


class WorklistKind(models.TextChoices):
    AT_RISK = "at_risk", _("high-value member at risk")
    DORMANT_VIP = "dormant_vip", _("dormant former S/A member")
    BIRTHDAY = "birthday", _("birthday today")
    NO_SECOND = "no_second", _("new member without a second order")
    GROUP_MOVE = "group_move", _("group move after a tier change")


class WorklistOutcome(models.TextChoices):
    CONTACTED = "contacted", _("contacted")
    NO_ANSWER = "no_answer", _("no answer")
    ORDERED = "ordered", _("ordered")
    NOT_INTERESTED = "declined", _("not interested")


class WorklistRule(models.Model):
    """One kind of worklist item: on or off, its priority and the script the leader reads out."""

    kind = models.CharField(_("kind"), max_length=12, choices=WorklistKind.choices, unique=True)
    active = models.BooleanField(_("active"), default=True)
    priority = models.PositiveSmallIntegerField(_("priority"), default=50, help_text=_("Higher comes first in the list."))
    script = models.TextField(
        _("script"), help_text=_("One line in template syntax over the message variables, e.g. {{ salutation }}，您常买的{{ usual_product }}今天特价。")
    )

    class Meta:
        verbose_name = _("worklist rule")
        verbose_name_plural = _("worklist rules")
        ordering = ("-priority",)

    def __str__(self) -> str:
        return self.get_kind_display()

    def clean(self) -> None:
        template_validate("script", self.script)


class WorklistSettings(SingletonRow):
    vip_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("high value from tier"),
        help_text=_("Members in this tier or above count as high value (and, when dormant, as former VIPs)."),
    )
    high_value_spend = models.DecimalField(
        _("or spent at least ¥"), max_digits=10, decimal_places=2, default=Decimal("1000"),
        help_text=_("In the last 365 days: such members count as high value whatever their tier."),
    )
    dormant_circle = models.ForeignKey(
        Circle, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("dormant circle")
    )
    new_member_from_days = models.PositiveSmallIntegerField(_("second order nudge from day"), default=3)
    new_member_to_days = models.PositiveSmallIntegerField(_("until day"), default=30)
    per_leader = models.PositiveSmallIntegerField(
        _("items per leader per day"), default=20, validators=[MinValueValidator(1)],
        help_text=_("The list stays short: the highest priorities first."),
    )

    class Meta:
        verbose_name = _("worklist settings")
        verbose_name_plural = _("worklist settings")

    def __str__(self) -> str:
        return str(_("worklist settings"))


class WorklistItem(models.Model):
    day = models.DateField(_("day"), db_index=True)
    leader = models.ForeignKey(GroupLeader, on_delete=models.CASCADE, related_name="worklist", verbose_name=_("group leader"))
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="+", verbose_name=_("community"))
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="worklist_items", verbose_name=_("member"), db_index=False)
    kind = models.CharField(_("why"), max_length=12, choices=WorklistKind.choices)
    priority = models.PositiveSmallIntegerField(_("priority"))
    reason = models.CharField(_("reason"), max_length=200)
    script = models.CharField(_("script"), max_length=300)
    outcome = models.CharField(_("outcome"), max_length=10, choices=WorklistOutcome.choices, blank=True)
    outcome_at = models.DateTimeField(_("marked at"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("worklist item")
        verbose_name_plural = _("worklist")
        ordering = ("-day", "-priority", "id")
        constraints = [models.UniqueConstraint(fields=["day", "member", "kind"], name="worklist_item_once_a_day")]
        indexes = [models.Index(fields=["leader", "day"], name="worklist_leader_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.member} · {self.get_kind_display()}"


# The dashboard: a daily snapshot of the figures staff watch, written by a beat
# task after the nightly recompute, so that pages read a few hundred rows.


class SnapshotKind(models.TextChoices):
    BASE = "base", _("whole base")
    TIER = "tier", _("tier")
    LEADER = "leader", _("group leader")
    MIGRATION = "migration", _("tier migration")
    CAMPAIGN = "campaign", _("campaign")
    JOURNEY = "journey", _("journey")


class KpiSnapshot(models.Model):
    day = models.DateField(_("day"))
    kind = models.CharField(_("kind"), max_length=10, choices=SnapshotKind.choices)
    key = models.CharField(_("key"), max_length=40, blank=True, help_text=_("The tier code, leader, campaign or journey id; empty for the base."))
    label = models.CharField(_("label"), max_length=120, blank=True)
    figures = models.JSONField(_("figures"), default=dict)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    class Meta:
        verbose_name = _("KPI snapshot")
        verbose_name_plural = _("KPI snapshots")
        ordering = ("-day", "kind", "key")
        constraints = [models.UniqueConstraint(fields=["day", "kind", "key"], name="kpi_snapshot_once_a_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.get_kind_display()} {self.label or self.key}"


class Indicator(models.TextChoices):
    REPURCHASE = "repurchase_rate", _("repurchase rate")
    AOV = "aov", _("average order value")
    # xgettext:no-python-format
    TOP5 = "top5_share", _("GMV share of the top 5% of members")
    FIRST_ORDER = "first_order_conversion", _("first-order conversion of new members")
    RETENTION = "retention_7d", _("7-day retention of new members")
    HIGH_RISK = "high_risk_share", _("share of members at high churn risk")
    UPGRADE = "upgrade_rate", _("upgrade rate (month over month)")
    DOWNGRADE = "downgrade_rate", _("downgrade rate (month over month)")
    NOT_CONTACTED = "not_contacted_share", _("members not contacted at all in 60 days (fairness)")
    MARKETING_BALANCE = "marketing_balance", _("marketing share against member share, per tier (fairness)")
    ROI = "roi", _("campaign ROI (90 days)")
    FOLLOW_UP = "follow_up_rate", _("worklist follow-up rate")


class KpiThreshold(models.Model):
    """The traffic light of one indicator: green from here, yellow from there, red below (or above, when lower is better)."""

    indicator = models.CharField(_("indicator"), max_length=30, choices=Indicator.choices, unique=True)
    higher_is_better = models.BooleanField(_("higher is better"), default=True)
    green = models.FloatField(_("green from"), help_text=_("Rates as fractions (0.35 = 35%), amounts in yuan."))
    yellow = models.FloatField(_("yellow from"))

    class Meta:
        verbose_name = _("traffic light")
        verbose_name_plural = _("traffic lights")
        ordering = ("indicator",)

    def __str__(self) -> str:
        return self.get_indicator_display()

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.higher_is_better and self.yellow > self.green:
            raise ValidationError({"yellow": _("When higher is better, yellow starts below green.")})
        if not self.higher_is_better and self.yellow < self.green:
            raise ValidationError({"yellow": _("When lower is better, yellow starts above green.")})

    def light(self, value: float | None) -> str:
        if value is None:
            return "none"
        if self.higher_is_better:
            return "green" if value >= self.green else "yellow" if value >= self.yellow else "red"
        return "green" if value <= self.green else "yellow" if value <= self.yellow else "red"


class KpiSettings(SingletonRow):
    message_cost = models.DecimalField(
        _("cost per message ¥"), max_digits=6, decimal_places=3, default=Decimal("0.050"),
        help_text=_("What one sent message costs, for the campaigns' ROI (coupons redeemed count as cost too)."),
    )
    not_contacted_days = models.PositiveSmallIntegerField(_("not contacted within days"), default=60, validators=[MinValueValidator(7)])

    class Meta:
        verbose_name = _("dashboard settings")
        verbose_name_plural = _("dashboard settings")

    def __str__(self) -> str:
        return str(_("dashboard settings"))
