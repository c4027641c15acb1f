"""What a tier gives a member, and what he earns: rights per tier, the growth
value and points ledgers, their stored balances, and the rules that earn.

Both ledgers are append-only. An entry is never changed or deleted: a refund,
a first order that passes to the next one, an expiry or a redemption is a new
entry. Each entry names its rule and its source (an order, an event, the
registration, a redemption, an expiry, a manual adjustment) and a sequence
number; (rule, source, seq) is unique, so the same award computed twice (a
retried task, a re-import, the nightly run after the per-order run) is
written once. loyalty/awards.py says how the entries are decided."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import Member, SingletonRow
from crm.validators import coupon_days_field
from segments.models import Tier


class RightKind(models.TextChoices):
    SERVICE = "service", _("service")
    ACCESS = "access", _("access")
    DISCOUNT = "discount", _("discount")
    COUPON = "coupon", _("coupon")


class Right(models.Model):
    """A right (权益) of one tier, as staff keep the catalogue."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="rights", verbose_name=_("tier"))
    name = models.CharField(_("name"), max_length=60)
    kind = models.CharField(_("kind"), max_length=8, choices=RightKind.choices, default=RightKind.SERVICE)
    description = models.CharField(_("description"), max_length=200, blank=True)
    monthly_quota = models.PositiveSmallIntegerField(
        _("times per month"), null=True, blank=True, help_text=_("Empty: no limit, or not counted.")
    )
    points_cost = models.PositiveIntegerField(
        _("points to redeem"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("Empty: part of the tier, not redeemed with points."),
    )
    coupon_value = models.DecimalField(
        _("coupon value ¥"), max_digits=8, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("For a coupon right: what the coupon takes off."),
    )
    coupon_threshold = models.DecimalField(
        _("coupon minimum spend ¥"), max_digits=8, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    coupon_days = coupon_days_field(default=14)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ("-tier__rank", "position", "id")
        verbose_name = _("member right")
        verbose_name_plural = _("member rights")
        constraints = [models.UniqueConstraint(fields=["tier", "name"], name="right_tier_name_unique")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == RightKind.COUPON and self.coupon_value is None:
            raise ValidationError({"coupon_value": _("A coupon right needs the coupon's value.")})
        if self.kind != RightKind.COUPON and self.coupon_value is not None:
            raise ValidationError({"coupon_value": _("Only a coupon right has a coupon value.")})


class Ledger(models.TextChoices):
    GROWTH = "growth", _("growth value")
    POINTS = "points", _("points")


class RuleCode(models.TextChoices):
    REGISTER = "register", _("registration")
    FIRST_ORDER = "first_order", _("first paid order")
    REPEAT_ORDER = "repeat_order", _("each later paid order")
    SHARE = "share", _("each share")
    UGC = "ugc", _("each piece of user content")
    ORDER_POINTS = "order_points", _("points per whole yuan")
    # Entries that no earning rule decides:
    REDEMPTION = "redemption", _("redemption")
    EXPIRY = "expiry", _("expiry")
    ADJUSTMENT = "adjustment", _("manual adjustment")


RULE_LEDGER = {
    RuleCode.REGISTER: Ledger.GROWTH,
    RuleCode.FIRST_ORDER: Ledger.GROWTH,
    RuleCode.REPEAT_ORDER: Ledger.GROWTH,
    RuleCode.SHARE: Ledger.GROWTH,
    RuleCode.UGC: Ledger.GROWTH,
    RuleCode.ORDER_POINTS: Ledger.POINTS,
}


class EarningRule(models.Model):
    """How much one rule earns from a date on. A change of amount is a new row
    with a later start: orders and events dated before it keep what they earned."""

    code = models.CharField(_("rule"), max_length=16, choices=[(c, l) for c, l in RuleCode.choices if c in RULE_LEDGER])
    amount = models.PositiveIntegerField(
        _("amount"), help_text=_("Growth value per order or event (times the event's count); for points: points per whole yuan.")
    )
    effective_from = models.DateField(_("effective from"), default=timezone.localdate)
    effective_until = models.DateField(_("effective until (exclusive)"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ("code", "-effective_from")
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        constraints = [models.UniqueConstraint(fields=["code", "effective_from"], name="earningrule_code_from_unique")]

    def __str__(self) -> str:
        return f"{self.get_code_display()}: {self.amount} ({self.effective_from:%Y-%m-%d})"

    @property
    def ledger(self) -> str:
        return RULE_LEDGER[self.code]

    def clean(self) -> None:
        if self.effective_until is not None and self.effective_from is not None and self.effective_until <= self.effective_from:
            raise ValidationError({"effective_until": _("The rule must end after it starts.")})


class TierPoints(models.Model):
    """A tier's points multiplier: an order earns points per yuan times the multiplier of the member's tier at the order's time."""

    tier = models.OneToOneField(Tier, on_delete=models.CASCADE, related_name="points", verbose_name=_("tier"))
    multiplier = models.DecimalField(
        _("points multiplier"), max_digits=4, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("10"))],
    )

    class Meta:
        verbose_name = _("tier points multiplier")
        verbose_name_plural = _("tier points multipliers")

    def __str__(self) -> str:
        return f"{self.tier}: ×{self.multiplier}"


class LoyaltySettings(SingletonRow):
    return_days = models.PositiveSmallIntegerField(
        _("return window (days)"), default=7, validators=[MaxValueValidator(90)],
        help_text=_("Points of an order dated D are pending until D + this many days, then available."),
    )
    expiry_years = models.PositiveSmallIntegerField(
        _("points expire after (calendar years)"), default=1, validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text=_("Points earned in year Y expire at the end of Y + this many years (Asia/Shanghai)."),
    )
    point_value = models.DecimalField(
        _("value of one point (¥)"), max_digits=6, decimal_places=4, default=Decimal("0.01"),
        help_text=_("What outstanding points are worth as a liability on the dashboard."),
    )

    class Meta:
        verbose_name = _("points settings")
        verbose_name_plural = _("points settings")

    def __str__(self) -> str:
        return str(_("points settings"))


class SourceKind(models.TextChoices):
    REGISTRATION = "registration", _("registration")
    ORDER = "order", _("order")
    EVENT = "event", _("engagement event")
    REDEMPTION = "redemption", _("redemption")
    EXPIRY = "expiry", _("expiry")
    ADJUSTMENT = "adjustment", _("manual adjustment")


class Entry(models.Model):
    # No database constraint on the member, as on the outbox (campaigns.models, above Delivery):
    # PostgreSQL checks a deferred constraint row by row at commit, which cost a first award of
    # 40M entries about two minutes. Entries are only written for members that exist (a settle
    # selects them from the members, orders and events), and Django still cascades on delete.
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"), db_index=False, db_constraint=False
    )
    amount = models.BigIntegerField(_("amount"))
    rule = models.CharField(_("rule"), max_length=16, choices=RuleCode.choices)
    source_kind = models.CharField(_("source"), max_length=12, choices=SourceKind.choices)
    source_id = models.BigIntegerField(_("source id"))
    seq = models.PositiveIntegerField(_("sequence"), default=0, help_text=_("0: the award; each later correction of it the next number."))
    occurred_at = models.DateTimeField(_("business time"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    # The version of the source a settle read (Order/EngagementEvent.changed_at, or
    # loyalty.awards.NEVER_CHANGED), so that the next settle knows whether a differing target
    # comes from the source (a corrected amount: the difference is written) or from a rule
    # edited in place (history stays). Compared by value, not with recorded_at: an edit
    # committed while a settle ran carries a changed_at before that settle's recorded_at.
    # Empty on entries no target wrote (reversals, redemptions, expiries, adjustments) and on
    # those written before this column existed (then recorded_at is compared, as before).
    source_version = models.DateTimeField(_("source version"), null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.get_rule_display()} {self.amount:+d}"


class GrowthEntry(Entry):
    class Meta:
        ordering = ("-occurred_at", "-id")
        verbose_name = _("growth value entry")
        verbose_name_plural = _("growth value entries")
        constraints = [models.UniqueConstraint(fields=["rule", "source_kind", "source_id", "seq"], name="growthentry_once")]
        indexes = [models.Index(fields=["member", "occurred_at"], name="growthentry_member_idx")]


class PointsEntry(Entry):
    available_at = models.DateTimeField(_("available from"))
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty for what spends points: redemptions, expiries, deductions.")
    )

    class Meta:
        ordering = ("-occurred_at", "-id")
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        constraints = [models.UniqueConstraint(fields=["rule", "source_kind", "source_id", "seq"], name="pointsentry_once")]
        # No index on available_at or expires_at: the night finds the points that become
        # available through the orders' time index, and expiries fall on 1 January only
        # (loyalty.services), so each index would cost every award its upkeep for nothing.
        indexes = [models.Index(fields=["member", "occurred_at"], name="pointsentry_member_idx")]


class Balance(models.Model):
    """A member's balances as the ledgers give them at computed_at: one row to read, never a SUM."""

    member = models.OneToOneField(Member, on_delete=models.CASCADE, primary_key=True, related_name="loyalty_balance", verbose_name=_("member"))
    growth = models.BigIntegerField(_("growth value"), default=0)
    points = models.BigIntegerField(_("points (total)"), default=0)
    pending = models.BigIntegerField(_("points pending"), default=0)
    expiring = models.BigIntegerField(_("points expiring in 30 days"), default=0)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)
    # When some of the pending points next become available (a local midnight): the 00:05 run
    # refreshes the balances it has come for, and until then a read takes the pending points from
    # the ledger (loyalty.balances.pending_stale). Empty: nothing pending, or computed before it existed.
    pending_until = models.DateTimeField(_("pending points next available at"), null=True, blank=True)

    class Meta:
        verbose_name = _("balance")
        verbose_name_plural = _("balances")
        indexes = [
            models.Index(fields=["points"], name="balance_points_idx", condition=models.Q(points__lt=0)),
            # The admin's list, highest growth value first: 50 rows, not a sort of every balance.
            models.Index(fields=["growth", "member"], name="balance_growth_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.growth} / {self.points}"

    @property
    def available(self) -> int:
        return self.points - self.pending


class Redemption(models.Model):
    """Points spent on a right (and, for a coupon right, the coupon it issued)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"))
    right = models.ForeignKey(Right, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("right"))
    points = models.PositiveIntegerField(_("points"))
    key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    coupon_id = models.BigIntegerField(_("coupon"), null=True, blank=True)
    created_at = models.DateTimeField(_("redeemed at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")

    def __str__(self) -> str:
        return f"{self.right} −{self.points}"


class Adjustment(models.Model):
    """A manual correction of one ledger, with its reason and author."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"))
    ledger = models.CharField(_("ledger"), max_length=6, choices=Ledger.choices)
    amount = models.IntegerField(_("amount"))
    reason = models.CharField(_("reason"), max_length=200)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = _("adjustment")
        verbose_name_plural = _("adjustments")

    def __str__(self) -> str:
        return f"{self.get_ledger_display()} {self.amount:+d}"


class SettleRun(models.Model):
    """One settle of the ledgers: what it covered, so that the next night starts where it ended."""

    # The scopes of the runs that settled everyone's changes: the next night starts where the last ended.
    NIGHTLY_SCOPES = ("all", "nightly")

    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    scope = models.CharField(_("scope"), max_length=10)  # all / nightly / members / reprice
    members = models.PositiveIntegerField(_("members"), default=0)
    entries = models.PositiveIntegerField(_("entries written"), default=0)
    max_order_id = models.BigIntegerField(default=0)
    max_event_id = models.BigIntegerField(default=0)
    max_member_id = models.BigIntegerField(default=0)
    timings = models.JSONField(_("seconds per stage"), default=dict, blank=True)

    class Meta:
        ordering = ("-started_at", "-id")
        # The last run of a scope (the night's start, whether the expiry run is behind): a run is
        # written per settle of a few members, so the table grows with the orders.
        indexes = [models.Index(fields=["scope", "started_at"], name="settlerun_scope_started")]
        verbose_name = _("ledger run")
        verbose_name_plural = _("ledger runs")

    def __str__(self) -> str:
        return f"{self.scope} {self.started_at:%Y-%m-%d %H:%M}"
