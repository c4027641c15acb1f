"""Invite-a-friend rewards (邀请有礼): what the first-order journey's D15 step
promises (DOMAIN.md 5: 1 friend ¥5, 3 friends ¥20). A member's friends invited
are his engagement events of kind "invite" (their counts summed) from the
program's first day; each milestone he reaches gives him a coupon, once."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Coupon, _yuan  # the amount as the coupon's own describe() writes it
from crm.models import Member, SingletonRow
from crm.validators import coupon_days_field

MILESTONES_DEFAULT = "1:5, 3:20"
_PAIR = re.compile(r"^\s*(\d{1,4})\s*[:：]\s*(\d{1,4}(?:\.\d{1,2})?)\s*$")


def milestones_parse(text: str) -> list[tuple[int, Decimal]]:
    """ "1:5, 3:20" → [(1, Decimal("5")), (3, Decimal("20"))]; a ValidationError names the wrong part."""
    pairs = []
    for part in filter(str.strip, re.split(r"[,，、;；]", text or "")):
        match = _PAIR.match(part)
        friends, value = (int(match[1]), Decimal(match[2])) if match else (0, Decimal(0))
        if not match or friends < 1 or not Decimal("0.01") <= value <= Decimal("500"):
            raise ValidationError(
                _('"%(part)s" is not a reward: write friends:yuan, e.g. 1:5 (1 to 9999 friends, ¥0.01 to ¥500).'), params={"part": part.strip()},
                code="invalid",
            )
        if pairs and friends <= pairs[-1][0]:
            raise ValidationError(_("Write the rewards in rising order of friends, each number once (1:5, 3:20)."), code="order")
        pairs.append((friends, value))
    if not pairs:
        raise ValidationError(_("Write at least one reward, e.g. 1:5."), code="empty")
    return pairs


def milestones_validate(text: str) -> None:
    milestones_parse(text)


class InviteSettings(SingletonRow):
    active = models.BooleanField(_("active"), default=True, help_text=_("Off: invites earn nothing until it is on again (missed milestones are then given)."))
    counts_from = models.DateField(
        _("invites count from"), default=timezone.localdate,
        help_text=_("Invites recorded before this day (Beijing time) earn nothing: they came before the program, and were rewarded or not promised then."),
    )
    milestones = models.CharField(
        _("rewards"), max_length=200, default=MILESTONES_DEFAULT, validators=[milestones_validate],
        help_text=_('Friends invited and the coupon then given (yuan off, no minimum spend), e.g. "1:5, 3:20": the first friend gives a ¥5 coupon, '
                    "the third one a ¥20 coupon more. Messages say them with {{ invite_offer }} (the first-order journey's D15 step does)."),
    )
    coupon_days = coupon_days_field(default=14)

    class Meta:
        verbose_name = _("invite reward settings")
        verbose_name_plural = _("invite reward settings")

    def __str__(self) -> str:
        return str(_("invite reward settings"))

    def offer_text(self) -> str:
        """What a message tells the member he earns: 邀1位好友得¥5，邀3位好友得¥20 (empty while off)."""
        if not self.active:
            return ""
        return "，".join(f"邀{friends}位好友得¥{_yuan(value)}" for friends, value in milestones_parse(self.milestones))


class InviteReward(models.Model):
    """A milestone a member reached, and the coupon it gave him. One per member and milestone:
    a re-imported or retried invite gives nothing twice. A reward stays when an invite is later
    corrected down (a coupon given is not taken back)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member"))
    friends = models.PositiveIntegerField(_("friends invited"))
    value = models.DecimalField(_("value ¥"), max_digits=8, decimal_places=2)
    coupon = models.OneToOneField(Coupon, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("coupon"))
    reached_at = models.DateTimeField(_("reached at"), help_text=_("the time of the invite that reached the milestone"))
    created_at = models.DateTimeField(_("given at"), default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = _("invite reward")
        verbose_name_plural = _("invite rewards")
        constraints = [models.UniqueConstraint(fields=["member", "friends"], name="invite_reward_once")]
        indexes = [models.Index(fields=["created_at", "id"], name="invite_reward_time_idx")]

    def __str__(self) -> str:
        return _("%(friends)d friends: ¥%(value)s") % {"friends": self.friends, "value": self.value}
