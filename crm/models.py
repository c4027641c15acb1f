"""The member core: who the members are, what they bought, how they engage,
and what they agreed to. Nothing here knows about tiers or campaigns."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from crm.masking import mask_mobile
from crm.validators import validate_cn_mobile


class SingletonRow(models.Model):
    """A table of exactly one row (pk 1) of settings staff edit in the admin."""

    class Meta:
        abstract = True

    @classmethod
    def current(cls):
        row, _created = cls.objects.get_or_create(pk=1)
        return row


class GroupLeader(models.Model):
    """A group leader (团长): a staff user who runs one or more community groups."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="group_leader", verbose_name=_("login")
    )
    display_name = models.CharField(_("display name"), max_length=64)
    mobile = models.CharField(_("mobile"), max_length=11, blank=True, validators=[validate_cn_mobile])

    class Meta:
        verbose_name = _("group leader")
        verbose_name_plural = _("group leaders")
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name


class Community(models.Model):
    """A community group (社群), usually one WeChat group led by a group leader."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    leader = models.ForeignKey(
        GroupLeader,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="communities",
        verbose_name=_("group leader"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("community")
        verbose_name_plural = _("communities")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Gender(models.TextChoices):
    FEMALE = "F", _("female")
    MALE = "M", _("male")
    UNKNOWN = "U", _("unknown")


class AgeBand(models.TextChoices):
    UNKNOWN = "", _("unknown")
    UNDER_25 = "18-24", _("18–24")
    FROM_25 = "25-34", _("25–34")
    FROM_35 = "35-44", _("35–44")
    FROM_45 = "45-54", _("45–54")
    FROM_55 = "55+", _("55 and over")


class Member(models.Model):
    external_id = models.CharField(_("member ID"), max_length=64, unique=True)
    # A person's name (姓名); every other "name" in the product is a thing's (名称).
    name = models.CharField(pgettext_lazy("person", "name"), max_length=64, blank=True)
    mobile = models.CharField(_("mobile"), max_length=11, blank=True, db_index=True, validators=[validate_cn_mobile])
    wechat_unionid = models.CharField(_("WeChat unionid"), max_length=64, blank=True)
    email = models.EmailField(_("email"), max_length=254, blank=True, db_default="")
    gender = models.CharField(_("gender"), max_length=1, choices=Gender.choices, default=Gender.UNKNOWN)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    age_band = models.CharField(_("age band"), max_length=5, choices=AgeBand.choices, blank=True, default="")
    lives_alone = models.BooleanField(_("lives alone"), default=False)
    has_elderly = models.BooleanField(_("has elderly at home"), default=False)
    has_children = models.BooleanField(_("has children"), default=False)
    works_late = models.BooleanField(_("often works late"), default=False)
    registered_at = models.DateTimeField(_("registered at"), null=True, blank=True)
    source_channel = models.CharField(_("source channel"), max_length=32, blank=True)
    community = models.ForeignKey(
        Community,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("community"),
        db_index=False,  # member_community_idx below serves the foreign key too
    )
    tags = models.ManyToManyField(Tag, through="MemberTag", blank=True, related_name="members", verbose_name=_("tags"))
    personalisation_opt_out = models.BooleanField(
        _("opted out of personalised marketing"),
        default=False,
        help_text=_("PIPL art. 24: the member refuses marketing chosen by personal traits (tiers, circles)."),
    )
    personalisation_opt_out_at = models.DateTimeField(_("opted out at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    erased_at = models.DateTimeField(
        _("personal data erased at"),
        null=True,
        blank=True,
        help_text=_("Erased on the member's request (PIPL): personal fields are blank and imports no longer fill them."),
    )

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        permissions = [
            ("view_all_members", _("Can see members of every community")),
            ("reveal_mobile", _("Can reveal a full mobile number (logged)")),
            ("export_personal_data", _("Can export everything held about a member (PIPL)")),
            ("erase_member", _("Can erase a member's personal data (PIPL)")),
            ("export_member", _("Can export member lists (masked)")),
        ]
        indexes = [
            # The changelist's registration-range filter and its sort by registration (ties by id:
            # a member file without times registers a day's members at 00:00).
            models.Index(fields=["registered_at", "id"], name="member_registered_idx"),
            models.Index(fields=["community", "registered_at"], name="member_community_reg_idx"),
            # A community's members newest first (the list filtered by community, a leader's own):
            # the 50 of a page read from the index, not all 500 of the community sorted (15 -> 0.7 ms).
            models.Index(fields=["community", "id"], name="member_community_idx"),
            # Name-prefix search (张…) in the admin; pattern ops let LIKE 'x%' use it on PostgreSQL.
            models.Index(fields=["name"], name="member_name_prefix_idx", opclasses=["varchar_pattern_ops"]),
            # The few erased members, which counts over the metrics table leave out (segments.circles.circle_count).
            models.Index(fields=["id"], name="member_erased_idx", condition=models.Q(erased_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.external_id} ({self.external_id})"

    @property
    def masked_mobile(self) -> str:
        return mask_mobile(self.mobile)


class MemberTag(models.Model):
    # Both lookups are served by the unique constraint and the (tag, member) index.
    member = models.ForeignKey(Member, on_delete=models.CASCADE, db_index=False, verbose_name=_("member"))
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, db_index=False, verbose_name=_("tag"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "tag"], name="member_tag_unique")]
        indexes = [models.Index(fields=["tag", "member"], name="membertag_tag_idx")]


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    WECOM = "wecom", _("WeCom")
    EMAIL = "email", _("email")
    PUSH = "push", _("app push")


class Consent(models.Model):
    """The current marketing consent of one member on one channel.

    No row means never asked, which is not consent. Every change is also kept
    in ConsentEvent, which is the proof."""

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="consents", verbose_name=_("member"), db_index=False
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    granted = models.BooleanField(_("granted"))
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    source = models.CharField(_("source"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [models.UniqueConstraint(fields=["member", "channel"], name="consent_member_channel_unique")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {_('granted') if self.granted else _('withdrawn')}"


class ConsentEvent(models.Model):
    """Append-only history of consent changes (time and source kept as proof)."""

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="consent_events", verbose_name=_("member"), db_index=False
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    granted = models.BooleanField(_("granted"))
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    source = models.CharField(_("source"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")
        indexes = [models.Index(fields=["member", "occurred_at"], name="consentevent_member_idx")]


class Category(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="products", verbose_name=_("category")
    )
    # When a known product last moved to another category (in the admin or by a lines file): every
    # member who bought it has other favourite categories, and the next nightly recompute is a full one.
    recategorised_at = models.DateTimeField(_("recategorised at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @classmethod
    def from_db(cls, db, field_names, values):
        product = super().from_db(db, field_names, values)
        product.category_id_read = product.__dict__.get("category_id")
        return product

    def save(self, *args, **kwargs) -> None:
        if hasattr(self, "category_id_read") and self.category_id != self.category_id_read:
            change_stamp(self, kwargs, "recategorised_at")
        super().save(*args, **kwargs)
        self.category_id_read = self.category_id


def change_stamp(row: models.Model, save_kwargs: dict, field: str = "changed_at") -> None:
    """A known row saved again records when (its changed_at, or the field named): the nightly runs and the settle read it again."""
    if not row._state.adding:
        setattr(row, field, timezone.now())
        if save_kwargs.get("update_fields") is not None:
            save_kwargs["update_fields"] = {*save_kwargs["update_fields"], field}


class OrderStatus(models.TextChoices):
    PAID = "paid", _("paid")
    REFUNDED = "refunded", _("refunded")


class Order(models.Model):
    # Unique by a constraint, not unique=True, which on PostgreSQL adds a second
    # (LIKE) index that costs seconds per million imported rows.
    order_no = models.CharField(_("order no."), max_length=64)
    # Indexed by (member, ordered_at) below; a plain member index would be redundant.
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="orders", verbose_name=_("member"), db_index=False
    )
    ordered_at = models.DateTimeField(_("ordered at"))
    amount = models.DecimalField(
        _("amount (¥)"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    status = models.CharField(_("status"), max_length=8, choices=OrderStatus.choices, default=OrderStatus.PAID)
    channel = models.CharField(_("channel"), max_length=32, blank=True)
    coupon_code = models.CharField(_("coupon code"), max_length=64, blank=True)
    # When a known order last changed (a refund, an edit) by file, API or admin; empty for
    # an order never changed since it arrived. The nightly recompute and settle read the
    # members of orders changed since their last run again (a new order they find by id).
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        permissions = [("export_order", _("Can export orders"))]
        indexes = [
            # Metrics per member over a time window, and a member's latest orders. The recompute's
            # per-member reads (a nightly run's LATERAL subqueries) find everything they need of an
            # order in the index (PostgreSQL's INCLUDE; other databases index the two fields only).
            models.Index(fields=["member", "ordered_at"], name="order_member_time_idx", include=["status", "amount", "id"]),
            # The order list, newest first, and date-range filters; with the member, id and status,
            # the nightly recompute's search for orders crossing a window's edge, and for the paid
            # ones among them (recompute.scope.changes_create), reads the index alone. The id is a
            # key, not an included column: the list breaks ties by it, and a day's orders imported
            # with a date only all share 00:00 (sorted whole for every page, with (ordered_at) alone).
            models.Index(fields=["ordered_at", "id"], name="order_time_idx", include=["member", "status"]),
            # Few orders ever change: the index holds only those.
            models.Index(fields=["changed_at"], name="order_changed_idx", condition=models.Q(changed_at__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["order_no"], name="order_no_unique"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="order_amount_not_negative"),
        ]

    @classmethod
    def from_db(cls, db, field_names, values):
        order = super().from_db(db, field_names, values)
        order.member_id_read = order.__dict__.get("member_id")  # who it belonged to when read (members_concerned)
        return order

    def members_concerned(self) -> list[int]:
        """Whose figures a save or delete of this order changes: its member, and the one it
        was read with when the save moved it to another."""
        read = getattr(self, "member_id_read", None)
        return [self.member_id, *([read] if read is not None and read != self.member_id else [])]

    def __str__(self) -> str:
        return self.order_no

    def save(self, *args, **kwargs) -> None:
        change_stamp(self, kwargs)
        read = getattr(self, "member_id_read", None)
        if read is None or read == self.member_id:
            super().save(*args, **kwargs)
            return
        with transaction.atomic(savepoint=False):  # moved: the order and its departure, or neither
            super().save(*args, **kwargs)
            Departure.objects.create(kind=Departure.Kind.ORDER, source_id=self.pk, member_id=read, at=self.changed_at, moved=True)
        self.member_id_read = self.member_id


class Departure(models.Model):
    """A row that left a member: an order moved to another (a corrected import, an edit in
    the admin, the API) or deleted, an event deleted. The member's stored figures and
    ledgers still count it, and only this row knows: the nightly recompute and settle
    read the members of departures since their last run again, the net under a lost
    per-member task (an order's new member is found through Order.changed_at). Append-only,
    written in the transaction that moves or deletes the row."""

    class Kind(models.TextChoices):
        ORDER = "order", _("order")
        EVENT = "event", _("engagement event")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    source_id = models.BigIntegerField(_("source id"))  # not a key: a deleted row leaves its departure behind
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"), db_index=False)
    at = models.DateTimeField(_("at"), db_index=True)
    moved = models.BooleanField(_("moved"), help_text=_("moved to another member; otherwise deleted"))

    class Meta:
        verbose_name = _("departure")
        verbose_name_plural = _("departures")

    def __str__(self) -> str:
        return f"{self.kind} {self.source_id}"


def deleted_with_member(origin) -> bool:
    """Whether a post_delete's origin is the deletion of members (their events go with them):
    nobody's figures keep those rows, and there is nobody to recompute."""
    return isinstance(origin, Member) or getattr(origin, "model", None) is Member


def row_deleted(sender, instance: Order | EngagementEvent, origin=None, **kwargs) -> None:
    """post_delete of an order or an event (one, or a queryset's): its member keeps a departure."""
    if deleted_with_member(origin):
        return
    kind = Departure.Kind.ORDER if isinstance(instance, Order) else Departure.Kind.EVENT
    Departure.objects.create(kind=kind, source_id=instance.pk, member_id=instance.member_id, at=timezone.now(), moved=False)


class OrderLine(models.Model):
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order"), db_index=False
    )
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="order_lines", verbose_name=_("product"), db_index=False
    )
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    unit_price = models.DecimalField(
        _("unit price (¥)"), max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    is_promo = models.BooleanField(_("bought on promotion"), default=False)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        permissions = [("export_orderline", _("Can export order lines"))]
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="orderline_order_product_unique"),
            models.CheckConstraint(condition=models.Q(unit_price__gte=0), name="orderline_price_not_negative"),
        ]
        indexes = [models.Index(fields=["product", "order"], name="orderline_product_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} × {self.quantity}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class EngagementKind(models.TextChoices):
    SHARE = "share", _("share")
    INVITE = "invite", _("friend invited")
    GROUP_MESSAGE = "group_message", _("group message")
    ORGANISED_GROUP_BUY = "organised_group_buy", _("group-buy organised")
    UGC = "ugc", _("user content")


class EngagementEvent(models.Model):
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="engagement_events", verbose_name=_("member"), db_index=False
    )
    kind = models.CharField(_("kind"), max_length=20, choices=EngagementKind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    count = models.PositiveIntegerField(_("count"), default=1)
    # When a known event last changed (its count corrected by file or admin), as Order.changed_at.
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("engagement event")
        verbose_name_plural = _("engagement events")
        permissions = [("export_engagementevent", _("Can export engagement events"))]
        constraints = [
            models.UniqueConstraint(fields=["member", "kind", "occurred_at"], name="engagement_natural_key"),
        ]
        indexes = [
            models.Index(fields=["occurred_at", "id"], name="engagement_time_idx"),  # the list breaks ties by id (a day's events share a time)
            models.Index(fields=["changed_at"], name="engagement_changed_idx", condition=models.Q(changed_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} × {self.count}"

    def save(self, *args, **kwargs) -> None:
        change_stamp(self, kwargs)
        super().save(*args, **kwargs)


class AuditAction(models.TextChoices):
    EXPORT = "export", _("export")
    REVEAL_MOBILE = "reveal_mobile", _("mobile revealed")
    CONSENT_CHANGE = "consent_change", _("consent changed")
    IMPORT = "import", _("import")
    PERSONAL_DATA_EXPORT = "pipl_export", _("personal data exported")
    ERASURE = "erasure", _("personal data erased")
    TIER = "tier", _("tier, pin or review")
    RULES = "rules", _("tiers or circles edited")
    CAMPAIGN = "campaign", _("template or campaign state changed")


class AuditEvent(models.Model):
    """Who did what to whose data. Written by the code that acts; never edited."""

    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("by")
    )
    action = models.CharField(_("action"), max_length=20, choices=AuditAction.choices)
    object_type = models.CharField(_("object type"), max_length=50, blank=True)
    object_id = models.CharField(_("object"), max_length=64, blank=True)
    summary = models.CharField(_("summary"), max_length=255)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")
        indexes = [
            models.Index(fields=["action", "at"], name="audit_action_time_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return self.summary
