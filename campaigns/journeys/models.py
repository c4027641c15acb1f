"""Journeys: a trigger enrols a member, and each step is sent on its day through
the same outbox as campaigns (each step owns a hidden campaign of status
"journey", so consent, the cap, quiet hours, coupons and reports all hold)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign, CampaignStatus, Coupon, CouponTerms, MessageTemplate, Variant, conversion_days_field
from crm.models import Member
from segments.models import Circle, Tier


class JourneyTrigger(models.TextChoices):
    FIRST_ORDER = "first_order", _("first order")
    NO_ORDER = "no_order", _("registered without an order for some days")
    CIRCLE = "circle", _("entered a circle (e.g. became dormant)")
    TIER_UP = "tier_up", _("moved up a tier")
    BIRTHDAY = "birthday", _("birthday")
    POINTS_DUE = "points_due", _("points expiring within 30 days")
    INVITE_REWARD = "invite_reward", _("got an invite reward (its coupon is the message's coupon)")


class Journey(models.Model):
    name = models.CharField(_("name"), max_length=60, unique=True)
    trigger = models.CharField(_("starts on"), max_length=16, choices=JourneyTrigger.choices)
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
    conversion_days = conversion_days_field()
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
    # What started it, so one trigger enrols once: first_order, birthday:2026, tierchange:812, circle:1763280000,
    # invite_reward:77.
    key = models.CharField(_("trigger"), max_length=40)
    started_at = models.DateTimeField(_("triggered at"), help_text=_("Step days count from here."))
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now)
    status = models.CharField(_("status"), max_length=8, choices=EnrolmentStatus.choices, default=EnrolmentStatus.ACTIVE)
    next_step = models.ForeignKey(
        JourneyStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("next step")
    )
    is_control = models.BooleanField(_("control group"), default=False)
    tier = models.ForeignKey(Tier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("tier entered"))
    # An invite reward's coupon: the steps' {{ coupon }}, {{ coupon_code }} and {{ coupon_expiry }} speak of it.
    coupon = models.ForeignKey(
        Coupon, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("coupon given"),
    )
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
