"""Tiers, circles, per-member metrics, tier history, pins, the review queue and
the churn model's fits.

Everything a threshold depends on is a row staff edit (Tier, Circle,
SegmentSettings); the deciding code is pure (ladder.py, churn.py) and the
set-based recompute (the recompute package) writes MemberMetrics, CircleMembership and
TierChange."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import Category, Community, Member, SingletonRow


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", "≥"


class Tier(models.Model):
    """One rung of the ladder. Conditions are lower bounds and all must hold;
    the ladder is evaluated from the highest rank down and the catch-all tier
    (exactly one, the lowest) takes everyone else."""

    code = models.CharField(_("code"), max_length=8, unique=True)
    name = models.CharField(_("name"), max_length=32)
    rank = models.PositiveSmallIntegerField(_("rank"), unique=True, help_text=_("Higher is better; evaluated from the top."))
    is_catch_all = models.BooleanField(
        _("catch-all"), default=False, help_text=_("The lowest tier: everyone no other tier takes.")
    )
    max_recency_days = models.PositiveIntegerField(
        _("R: at most days since last order"), null=True, blank=True
    )
    orders_comparison = models.CharField(_("F comparison"), max_length=3, choices=Comparison.choices, default=Comparison.GT)
    orders_365 = models.PositiveIntegerField(_("F: orders in 365 days"), null=True, blank=True)
    spend_comparison = models.CharField(_("M comparison"), max_length=3, choices=Comparison.choices, default=Comparison.GTE)
    spend_365 = models.DecimalField(
        _("M: spend in 365 days (¥)"), max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0"))],
    )
    community = models.ForeignKey(
        Community, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("community group"), help_text=_("The WeChat group members of this tier belong in."),
    )
    playbook = models.TextField(_("what staff do"), blank=True)
    operators = models.ManyToManyField(
        "auth.Group", blank=True, related_name="+", verbose_name=_("operated by"),
        help_text=_("Staff in these roles see and work this tier's members (without seeing every member)."),
    )

    class Meta:
        ordering = ("-rank",)
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Trend(models.TextChoices):
    RISING = "rising", _("rising")
    STEADY = "steady", _("steady")
    FALLING = "falling", _("falling")


class RiskBand(models.TextChoices):
    LOW = "low", _("low")
    MEDIUM = "medium", _("medium")
    HIGH = "high", _("high")


class ChurnModel(models.TextChoices):
    MBGNBD = "mbgnbd", _("modified BG/NBD")
    BGNBD = "bgnbd", _("BG/NBD")


class TimeUnit(models.TextChoices):
    DAY = "day", _("day")
    WEEK = "week", _("week")


class MemberMetrics(models.Model):
    """What the recompute derives for one member. Recency is not stored: it is
    the as-of date minus last_order_at's date, so a quiet day writes nothing."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, primary_key=True, related_name="metrics", verbose_name=_("member")
    )
    first_order_at = models.DateTimeField(_("first order"), null=True, blank=True)
    last_order_at = models.DateTimeField(_("last order"), null=True, blank=True, db_index=True)
    orders_total = models.PositiveIntegerField(_("paid orders (all time)"), default=0)
    repeat_days = models.PositiveIntegerField(_("repeat purchase days"), default=0)
    orders_365 = models.PositiveIntegerField(_("orders (365 days)"), default=0, db_index=True)
    spend_365 = models.DecimalField(_("spend (365 days, ¥)"), max_digits=14, decimal_places=2, default=Decimal("0"))
    max_order_365 = models.DecimalField(_("largest order (365 days, ¥)"), max_digits=12, decimal_places=2, default=Decimal("0"))
    avg_order_value = models.DecimalField(_("average order value (¥)"), max_digits=12, decimal_places=2, default=Decimal("0"))
    # The two counts as the last run that wrote the row saw them: a nightly run leaves
    # them while the trend they give holds (the member page counts them on the day).
    orders_30d = models.PositiveIntegerField(_("orders (last 30 days)"), default=0)
    orders_prior_90d = models.PositiveIntegerField(_("orders (90 days before those)"), default=0)
    trend = models.CharField(_("trend"), max_length=8, choices=Trend.choices, default=Trend.STEADY)
    refund_rate = models.FloatField(_("return rate"), default=0.0)
    promo_share = models.FloatField(_("promo share"), default=0.0)
    favourite_category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("favourite category")
    )
    second_category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("second category")
    )
    usual_order_hour = models.PositiveSmallIntegerField(_("usual order hour"), null=True, blank=True)
    v_score = models.FloatField(_("V score"), default=0.0, db_index=True)
    p_alive = models.FloatField(_("P(alive)"), null=True, blank=True)
    expected_orders_30d = models.FloatField(_("expected orders (30 days)"), null=True, blank=True)
    risk_band = models.CharField(_("churn risk"), max_length=8, choices=RiskBand.choices, blank=True)
    # The day the risk band moves if the member does not order again (the nightly run takes him in then).
    band_moves_on = models.DateField(_("churn risk moves on"), null=True, blank=True, db_index=True)
    # What the favourite categories and the promo share were worked out from, so that a
    # nightly run can add and take away the lines of the orders entering and leaving the
    # window instead of reading a member's every line again (recompute.lines.lines_stage): the
    # window's line value and promo value, the two favourites' values and a bound on any
    # other category's (NULL: there is none), in fen, covering the paid orders with an id up
    # to lines_order_id in the window as of lines_as_of. NULL sums: not known, read whole.
    lines_value_cents = models.BigIntegerField(null=True, blank=True, editable=False)
    lines_promo_cents = models.BigIntegerField(null=True, blank=True, editable=False)
    favourite_cents = models.BigIntegerField(null=True, blank=True, editable=False)
    second_cents = models.BigIntegerField(null=True, blank=True, editable=False)
    others_cents = models.BigIntegerField(null=True, blank=True, editable=False)
    lines_as_of = models.DateField(null=True, blank=True, editable=False)
    lines_order_id = models.BigIntegerField(null=True, blank=True, editable=False)
    # Likewise for the usual order hour (recompute.habits.habits_stage), over the same orders: the
    # paid orders at that hour and a bound on any other hour's (NULL: not known, read whole).
    # The repeat purchase days cover the same orders too, all time.
    hour_orders = models.PositiveIntegerField(null=True, blank=True, editable=False)
    next_hour_orders = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # Indexed by (tier, member) below, which serves the tier's own lookups too.
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("tier"), db_index=False)
    tier_since = models.DateTimeField(_("in tier since"), null=True, blank=True)
    computed_at = models.DateTimeField(_("computed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("member metrics")
        verbose_name_plural = _("member metrics")
        indexes = [
            models.Index(fields=["tier", "member"], name="segments_metrics_tier_member"),
            models.Index(fields=["risk_band"], name="segments_metrics_risk_band"),  # no LIKE index beside it
        ]

    def __str__(self) -> str:
        return str(self.member_id)

    @property
    def favourites(self) -> str:
        """His favourite categories as a page reads them ("生鲜 / 日化"); "" when none is known."""
        return " / ".join(str(category) for category in (self.favourite_category, self.second_category) if category)


class RunStatus(models.TextChoices):
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class ChangeReason(models.TextChoices):
    NIGHTLY = "nightly", _("nightly run")
    ORDER = "order", _("new order")
    IMPORT = "import", _("import")
    MANUAL = "manual", _("manual")
    PIN = "pin", _("pin")
    REVIEW = "review", _("review approved")
    REBUILD = "rebuild", _("history rebuilt from orders")


class RecomputeRun(models.Model):
    # The runs that bring everyone to their day: a full run, or a nightly one (whom it does not
    # read cannot have changed). The figures an export or the home's checks call current.
    EVERYONE = models.Q(full=True) | models.Q(reason=ChangeReason.NIGHTLY)

    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    as_of = models.DateField(_("as of"))
    reason = models.CharField(_("reason"), max_length=8, choices=ChangeReason.choices)
    full = models.BooleanField(_("everyone"), default=False)
    status = models.CharField(_("status"), max_length=8, choices=RunStatus.choices, default=RunStatus.RUNNING)
    members = models.PositiveIntegerField(_("members evaluated"), default=0)
    tier_changes = models.PositiveIntegerField(_("tier changes"), default=0)
    reviews = models.PositiveIntegerField(_("sent to review"), default=0)
    max_order_id = models.BigIntegerField(default=0)
    max_event_id = models.BigIntegerField(default=0)
    # The highest order line id when the run began: lines above it that belong to an order the run
    # had read (a lines file a day after its orders, a line added in the admin) make the next nightly
    # run read that member again whole.
    max_line_id = models.BigIntegerField(default=0)
    # A full run's highest member id: every member up to it has a metrics row since (circles.circle_count).
    max_member_id = models.BigIntegerField(null=True, blank=True)
    timings = models.JSONField(_("timings (s)"), default=dict, blank=True)
    message = models.TextField(_("message"), blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("requested by"),
    )
    # When a worker took the run up (a queued run has none). While it works or waits, its
    # transaction holds the run's own advisory lock (segments.services.RUN_LOCK_CLASS); a run
    # taken up whose lock is free was interrupted. A lock, not a session id: behind a pooler
    # in transaction pooling the session is not the server connection.
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("-started_at",)
        # Every order's recompute is a run: the few still running are found without reading them all.
        indexes = [models.Index(fields=["started_at"], condition=models.Q(status="running"), name="recompute_run_running")]
        verbose_name = _("recompute run")
        verbose_name_plural = _("recompute runs")

    def __str__(self) -> str:
        return f"{self.get_reason_display()} {self.as_of}"


class TierChange(models.Model):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes", verbose_name=_("member"))
    from_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("from")
    )
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+", verbose_name=_("to"))
    at = models.DateTimeField(_("when"), default=timezone.now)
    reason = models.CharField(_("why"), max_length=8, choices=ChangeReason.choices)
    run = models.ForeignKey(
        RecomputeRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("run")
    )
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ("-at", "-id")
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        indexes = [
            models.Index(fields=["member", "at"], name="segments_tierchange_member_at"),
            # Windows of time, and the admin's history newest first (at, then id): the first page is
            # read off the index, where a run's million moves sharing one `at` made it sort them all.
            models.Index(fields=["at", "id"], name="segments_tierchange_at_id"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} → {self.to_tier_id}"


class TierPin(models.Model):
    """Manual calibration: while a pin is in force, recomputes keep the member in its tier."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_pins", verbose_name=_("member"))
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+", verbose_name=_("tier"))
    reason = models.CharField(_("reason"), max_length=200)
    starts_on = models.DateField(_("from"), default=timezone.localdate)
    ends_on = models.DateField(_("until (inclusive)"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("pinned by"),
    )
    created_at = models.DateTimeField(_("pinned at"), default=timezone.now)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("tier pin")
        verbose_name_plural = _("tier pins")
        indexes = [models.Index(fields=["member", "ends_on"], name="segments_pin_member_ends")]

    def __str__(self) -> str:
        return f"{self.member_id} → {self.tier_id}"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", _("waiting for review")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", _("rejected")


class TierReview(models.Model):
    """A promotion caused by one order far outside the member's own history waits here."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_reviews", verbose_name=_("member"))
    from_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("from"))
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+", verbose_name=_("proposed tier"))
    order = models.ForeignKey(
        "crm.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("the outlying order")
    )
    largest_order = models.DecimalField(_("largest order (¥)"), max_digits=12, decimal_places=2)
    usual_order = models.DecimalField(_("median of the other orders (¥)"), max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(_("raised at"), default=timezone.now)
    status = models.CharField(_("status"), max_length=8, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    run = models.ForeignKey(RecomputeRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("tier review")
        verbose_name_plural = _("tier review queue")
        constraints = [
            models.UniqueConstraint(
                fields=["member"], condition=models.Q(status="pending"), name="segments_one_pending_review_per_member"
            )
        ]

    def __str__(self) -> str:
        return f"{self.member_id} → {self.to_tier_id}"


class GroupMoveStatus(models.TextChoices):
    PENDING = "pending", _("to do")
    DONE = "done", _("done")
    DISMISSED = "dismissed", _("dismissed")


class GroupMove(models.Model):
    """On a tier change the member should leave the old tier's WeChat group and
    be invited into the new one; groups are joined by invitation, so this is a
    to-do for the operator."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="group_moves", verbose_name=_("member"))
    change = models.OneToOneField(TierChange, on_delete=models.CASCADE, related_name="group_move", verbose_name=_("tier change"))
    from_community = models.ForeignKey(
        Community, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("leave group")
    )
    to_community = models.ForeignKey(
        Community, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("join group")
    )
    status = models.CharField(_("status"), max_length=10, choices=GroupMoveStatus.choices, default=GroupMoveStatus.PENDING)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("done by")
    )
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("group move")
        verbose_name_plural = _("group moves")
        indexes = [models.Index(fields=["status", "created_at"], name="segments_groupmove_status")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_community_id} → {self.to_community_id}"


class CircleKind(models.TextChoices):
    CIRCLE = "circle", _("circle")
    LIFECYCLE = "lifecycle", _("lifecycle segment")
    TAG = "tag", _("automatic tag")


class Circle(models.Model):
    """A segment that may overlap others: a saved filter (segments.circles.CircleFilter)
    whose members the recompute materialises in CircleMembership."""

    name = models.CharField(_("name"), max_length=50, unique=True)
    kind = models.CharField(_("kind"), max_length=10, choices=CircleKind.choices, default=CircleKind.CIRCLE)
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    usual_share = models.DecimalField(
        _("usual share (%)"), max_digits=5, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    description = models.TextField(_("what staff do"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    member_count = models.PositiveIntegerField(_("members"), default=0)
    counted_at = models.DateTimeField(_("counted at"), null=True, blank=True)

    class Meta:
        ordering = ("kind", "name")
        verbose_name = _("circle")
        verbose_name_plural = _("circles")

    def __str__(self) -> str:
        return self.name


class CircleMembership(models.Model):
    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="circle_memberships")
    since = models.DateTimeField(_("since"), default=timezone.now)

    class Meta:
        verbose_name = _("circle membership")
        verbose_name_plural = _("circle memberships")
        constraints = [models.UniqueConstraint(fields=["circle", "member"], name="segments_circle_member_unique")]


class SegmentSettings(SingletonRow):
    """One row: the knobs of the recompute that are not part of a tier or a circle."""

    review_multiple = models.DecimalField(
        _("review: order above × median"), max_digits=5, decimal_places=2, default=Decimal("5"),
        help_text=_("A promotion caused by one order above this multiple of the member's median order waits for review."),
    )
    review_min_amount = models.DecimalField(
        _("review: and above (¥)"), max_digits=12, decimal_places=2, default=Decimal("2000")
    )
    trend_ratio = models.FloatField(
        _("trend ratio"), default=1.25,
        help_text=_("Rising when the last 30 days' orders exceed this multiple of the monthly rate of the 90 days before; falling below its inverse."),
    )
    churn_model = models.CharField(_("churn model"), max_length=8, choices=ChurnModel.choices, default=ChurnModel.MBGNBD)
    churn_time_unit = models.CharField(_("churn time unit"), max_length=4, choices=TimeUnit.choices, default=TimeUnit.WEEK)
    churn_min_members = models.PositiveIntegerField(
        _("fit the model from (members with orders)"), default=200,
        help_text=_("Below this, churn risk uses the member's usual gap between orders instead."),
    )
    risk_high_below = models.FloatField(_("high risk: P(alive) below"), default=0.3)
    risk_medium_below = models.FloatField(_("medium risk: P(alive) below"), default=0.6)
    v_weight_share = models.FloatField(_("V weight: share"), default=1.0)
    v_weight_invite = models.FloatField(_("V weight: invite"), default=3.0)
    v_weight_group_message = models.FloatField(_("V weight: group message"), default=0.2)
    v_weight_group_buy = models.FloatField(_("V weight: organised group-buy"), default=5.0)

    class Meta:
        verbose_name = _("recompute settings")
        verbose_name_plural = _("recompute settings")

    def __str__(self) -> str:
        return str(_("recompute settings"))


class ChurnFit(models.Model):
    fitted_at = models.DateTimeField(_("fitted at"), default=timezone.now)
    as_of = models.DateField(_("as of"))
    model = models.CharField(_("model"), max_length=8, choices=ChurnModel.choices)
    time_unit = models.CharField(_("time unit"), max_length=4, choices=TimeUnit.choices)
    n_members = models.PositiveIntegerField(_("members"))
    r = models.FloatField()
    alpha = models.FloatField()
    a = models.FloatField()
    b = models.FloatField()
    log_likelihood = models.FloatField(_("log-likelihood"))

    class Meta:
        ordering = ("-fitted_at",)
        get_latest_by = "fitted_at"
        verbose_name = _("churn model fit")
        verbose_name_plural = _("churn model fits")

    def __str__(self) -> str:
        return f"{self.get_model_display()} {self.as_of}"
