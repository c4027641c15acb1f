"""The group leader's worklist: built each morning, ticked off during the day."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from campaigns.templating import template_validate
from crm.models import Community, GroupLeader, Member, SingletonRow
from segments.models import Circle, Tier


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
