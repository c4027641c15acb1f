"""The dashboard: a daily snapshot of the figures staff watch, written by a beat
task after the nightly recompute, so that pages read a few hundred rows."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import SingletonRow


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
