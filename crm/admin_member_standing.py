"""What the member page and list show from segments, loyalty and campaigns:
tier, churn risk, circles, metrics, the gap to the next tier, tier history and
pins; growth value, points, rights and what the next tier adds, and the
redemption of points; the latest messages and coupons.

This is the one place where the member admin composes from the other apps
(DESIGN.md: crm itself knows nothing of tiers)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages as user_messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet, Value
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _, pgettext_lazy

from campaigns.invites.models import InviteReward
from campaigns.invites.services import invite_progress
from campaigns.models import Coupon, Delivery, _yuan  # an amount as the coupon's own describe() writes it
from campaigns.rewards import right_redeem
from crm.models import Member
from loyalty.models import GrowthEntry, PointsEntry, Redemption, Right, RuleCode
from loyalty.services import RedemptionError, balance_of, rights_of
from segments.models import Circle, RiskBand, Tier, TierChange, TierPin
from segments.services import gap_text, member_standing

TIER_HISTORY_ON_PAGE = 30
MESSAGES_ON_PAGE = 10
LEDGER_ON_PAGE = 10
COUPONS_ON_PAGE = 10


class ChoiceListFilter(admin.SimpleListFilter):
    """A value that is not one of the filter's choices (a mistyped ?tier=abc) is
    the admin's usual "?e=1" answer, not a query that fails."""

    def chosen(self) -> str | None:
        value = self.value()
        if value and not self.is_valid(value):
            raise IncorrectLookupParameters(value)
        return value

    def is_valid(self, value: str) -> bool:
        return value in {str(choice) for choice, _label in self.lookup_choices}


class TierListFilter(ChoiceListFilter):
    title = _("tier")
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return [(str(tier.pk), str(tier)) for tier in Tier.objects.all()]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.filter(metrics__tier_id=tier) if (tier := self.chosen()) else queryset


class CircleListFilter(ChoiceListFilter):
    title = _("circle")
    parameter_name = "circle"

    def lookups(self, request, model_admin):
        return [(str(circle.pk), circle.name) for circle in Circle.objects.filter(active=True)]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.filter(circle_memberships__circle_id=circle) if (circle := self.chosen()) else queryset

    def is_valid(self, value: str) -> bool:
        """Any circle: the circle list links its inactive ones here too."""
        return value.isdigit() and len(value) < 18 and Circle.objects.filter(pk=int(value)).exists()


class RiskListFilter(ChoiceListFilter):
    title = _("churn risk")
    parameter_name = "risk"

    def lookups(self, request, model_admin):
        return RiskBand.choices

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.filter(metrics__risk_band=band) if (band := self.chosen()) else queryset


def _metrics(member: Member):
    try:
        return member.metrics
    except Member.metrics.RelatedObjectDoesNotExist:
        return None


def _months_table(months) -> str:
    """The last 12 calendar months side by side: the month, its paid orders and spend (whole yuan;
    the cent figure in the cell's title)."""
    cells = [
        (
            format_html('<th scope="col" title="{}">{}</th>', first.strftime("%Y-%m"), _("month %(month)s") % {"month": first.month}),
            format_html("<td>{}</td>", orders or "·"),
            format_html('<td title="¥{}">{}</td>', f"{spend:,.2f}", f"{spend:,.0f}" if spend else "·"),
        )
        for first, orders, spend in months
    ]
    return format_html(
        '<table class="crm-months"><caption>{}</caption><thead><tr><th></th>{}</tr></thead><tbody>'
        "<tr><th scope=\"row\">{}</th>{}</tr><tr><th scope=\"row\">{}</th>{}</tr></tbody></table>",
        _("from %(first)s to %(last)s") % {"first": months[0][0].strftime("%Y-%m"), "last": months[-1][0].strftime("%Y-%m")},
        format_html_join("", "{}", ((head,) for head, _o, _s in cells)),
        _("orders"),
        format_html_join("", "{}", ((count,) for _h, count, _s in cells)),
        _("spend (¥)"),
        format_html_join("", "{}", ((spend,) for _h, _o, spend in cells)),
    )


class MemberStandingMixin:
    """Columns, filters and read-only panels of the member admin that come from segments."""

    standing_list_display = ("tier", "churn_risk")
    standing_list_filter = (TierListFilter, CircleListFilter, RiskListFilter)
    standing_readonly_fields = ("standing", "circles", "tier_history", "points_and_rights", "ledger_links", "messages", "coupons", "invites")
    standing_fieldsets = (
        (_("Tier, churn risk and circles"), {"fields": ("standing", "circles", "tier_history")}),
        (_("Growth value, points and rights"), {"fields": ("points_and_rights",)}),
        (_("Messages and coupons"), {"fields": ("messages", "coupons", "invites")}),
    )

    def get_fieldsets(self, request, obj=None):
        """The links to a member's whole ledgers, for those who may read them (not a group leader)."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not request.user.has_perm("loyalty.view_pointsentry"):
            return fieldsets
        return [
            (name, {**options, "fields": (*options["fields"], "ledger_links")}) if "points_and_rights" in options["fields"] else (name, options)
            for name, options in fieldsets
        ]

    @admin.display(description=_("all entries"))
    def ledger_links(self, member: Member) -> str:
        """Each of the member's lists in full (the page shows the latest entries), through the lists'
        search by member ID, which reads the member's own rows by index."""
        search = "?" + urlencode({"q": member.external_id})
        return format_html_join(
            " · ", '<a href="{}">{}</a>',
            (
                (reverse("admin:loyalty_growthentry_changelist") + search, _("growth value ledger")),
                (reverse("admin:loyalty_pointsentry_changelist") + search, _("points ledger")),
                (reverse("admin:loyalty_redemption_changelist") + search, _("redemptions")),
                (reverse("admin:loyalty_adjustment_changelist") + search, _("adjustments")),
            ),
        )

    @admin.display(description=_("tier"), ordering="metrics__tier__rank")
    def tier(self, member: Member) -> str:
        metrics = _metrics(member)
        return str(metrics.tier) if metrics and metrics.tier else "-"

    @admin.display(description=_("churn risk"))
    def churn_risk(self, member: Member) -> str:
        metrics = _metrics(member)
        if not metrics or not metrics.risk_band:
            return "-"
        return format_html('<span class="crm-risk crm-risk-{}">{}</span>', metrics.risk_band, metrics.get_risk_band_display())

    @admin.display(description=_("standing"))
    def standing(self, member: Member) -> str:
        if not member.pk:
            return "-"
        state = member_standing(member)
        if state is None:
            return _("Not computed yet: the next recompute places this member.")
        metrics = state["metrics"]
        rows = [
            (_("tier"), str(metrics.tier) if metrics.tier else "-"),
            (_("in tier since"), admin.utils.display_for_value(metrics.tier_since, "-")),
            (_("days since last order (R)"), "-" if state["recency_days"] is None else state["recency_days"]),
            (_("orders (365 days, F)"), metrics.orders_365),
            (_("spend (365 days, M)"), f"¥{metrics.spend_365:,.2f}"),
            (_("orders / spend per month"), f"{metrics.orders_365 / 12:.1f} / ¥{metrics.spend_365 / 12:,.2f}"),
            (_("month by month (paid orders, spend)"), _months_table(state["months"])),
            (_("average order value"), f"¥{metrics.avg_order_value:,.2f}"),
            (_("trend (30 days against the 90 before)"), f"{metrics.get_trend_display()} ({state['orders_30d']} / {state['orders_prior_90d']})"),
            (_("promo share"), f"{metrics.promo_share:.0%}"),
            (_("return rate"), f"{metrics.refund_rate:.0%}"),
            (_("favourite categories"), metrics.favourites or "-"),
            (_("usual order hour"), "-" if metrics.usual_order_hour is None else f"{metrics.usual_order_hour}:00"),
            (_("V score"), f"{metrics.v_score:g}"),
            (_("P(alive)"), "-" if metrics.p_alive is None else f"{metrics.p_alive:.0%}"),
            (_("churn risk"), metrics.get_risk_band_display() or "-"),
            (_("expected orders (next 30 days)"), "-" if metrics.expected_orders_30d is None else f"{metrics.expected_orders_30d:.1f}"),
            (_("expected next order"), state["expected_next_order"] or "-"),
        ]
        if state["gap"] is not None:
            rows.append((_("to the next tier"), gap_text(state["gap"]) or "-"))
        pins = TierPin.objects.filter(member=member, released_at=None, ends_on__gte=timezone.localdate()).select_related("tier")
        for pin in pins:
            rows.append((_("pinned"), f"{pin.tier} {pin.starts_on} – {pin.ends_on}: {pin.reason}"))
        add_pin = reverse("admin:segments_tierpin_add") + f"?member={member.pk}"
        return format_html(
            '<table class="crm-inline-table crm-standing"><tbody>{}</tbody></table><p><a href="{}">{}</a></p>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
            add_pin,
            _("Pin to a tier"),
        )

    @admin.display(description=_("circles and automatic tags"))
    def circles(self, member: Member) -> str:
        if not member.pk:
            return "-"
        memberships = member.circle_memberships.select_related("circle").order_by("circle__kind", "circle__name")
        if not memberships:
            return _("In no circle.")
        return format_html_join(
            "",
            '<span class="crm-chip crm-chip-{}" title="{}">{}</span> ',
            (
                (m.circle.kind, admin.utils.display_for_value(m.since, "-"), m.circle.name)
                for m in memberships
            ),
        )

    @admin.display(description=_("tier history"))
    def tier_history(self, member: Member) -> str:
        if not member.pk:
            return "-"
        changes = list(
            TierChange.objects.filter(member=member).select_related("from_tier", "to_tier").order_by("-at", "-id")[:TIER_HISTORY_ON_PAGE]
        )
        if not changes:
            return _("No tier changes yet.")

        def line(change: TierChange, older: TierChange | None) -> tuple:
            # A first placement (from nothing) after history rebuilt from the orders continues it.
            before = change.from_tier or (older.to_tier if older else None)
            reason = change.get_reason_display()
            if change.from_tier is None and before is not None and before.pk == change.to_tier_id:
                unchanged = _("tier unchanged: recording began here")  # outside the f-string, where makemessages finds it
                reason = f"{reason} · {unchanged}"
            return (admin.utils.display_for_value(change.at, "-"), before.code if before else "–",
                    f"{change.to_tier.code} {change.to_tier.name}", reason)

        return format_html(
            '<ol class="crm-timeline">{}</ol>',
            format_html_join(
                "",
                "<li><time>{}</time> {} → <strong>{}</strong> <span class='crm-muted'>{}</span></li>",
                (line(change, older) for change, older in zip(changes, [*changes[1:], None])),
            ),
        )

    @admin.display(description=_("growth value, points and rights"))
    def points_and_rights(self, member: Member) -> str:
        if not member.pk:
            return "-"
        balance = balance_of(member)
        rights = rights_of(member)
        rows = [
            (_("growth value"), balance.growth),
            (_("points available"), balance.available),
            (_("points pending (return window)"), balance.pending),
            (_("points expiring within 30 days"), balance.expiring),
        ]
        if balance.points < 0:
            rows.append((_("redemption"), _("blocked: the balance is negative")))
        rows.append((_("rights"), "、".join(right.name for right in rights.mine) or "-"))
        if rights.next_tier is not None:
            rows.append((_("%(tier)s adds") % {"tier": rights.next_tier.name}, "、".join(right.name for right in rights.next_adds) or "-"))
        # The latest entries of both ledgers, in one query.
        fields = ("occurred_at", "recorded_at", "amount", "rule")
        entries = (
            GrowthEntry.objects.filter(member=member).order_by().annotate(ledger=Value(str(_("growth value")))).values_list(*fields, "ledger")
            .union(PointsEntry.objects.filter(member=member).order_by().annotate(ledger=Value(str(_("points")))).values_list(*fields, "ledger"), all=True)
            .order_by("-occurred_at", "-recorded_at")[:LEDGER_ON_PAGE]
        )
        rule_names = dict(RuleCode.choices)

        def rule_name(rule: str, amount: int) -> str:
            # A positive expiry entry undoes one: the lot it took was refunded after it expired.
            return str(_("expiry given back")) if rule == RuleCode.EXPIRY and amount > 0 else rule_names.get(rule, rule)

        return format_html(
            '<table class="crm-inline-table" data-testid="loyalty"><tbody>{}</tbody></table><ol class="crm-timeline">{}</ol>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
            format_html_join(
                "",
                "<li><time>{}</time> {} {} <span class='crm-muted'>{}</span></li>",
                (
                    (admin.utils.display_for_value(occurred_at, "-"), ledger, f"{amount:+d}", rule_name(rule, amount))
                    for occurred_at, _recorded_at, amount, rule, ledger in entries
                ),
            ),
        )

    def standing_urls(self):
        return [path("<int:member_id>/redeem/", self.admin_site.admin_view(self.redeem_view), name="crm_member_redeem")]

    def redeem_view(self, request, member_id: int):
        """Points for a right (or a coupon right's coupon): the reason is shown when it cannot be, and nothing is written."""
        member = self._member_for(request, member_id, "loyalty.add_redemption")
        redeemable = [right for right in rights_of(member).mine if right.points_cost]
        form = RedeemForm(request.POST or None, rights=redeemable)
        if request.method == "POST" and form.is_valid():
            try:
                redemption, coupon = right_redeem(member=member, right=form.cleaned_data["right"], key=form.cleaned_data["key"], user=request.user)
            except RedemptionError as error:
                form.add_error(None, str(error))
            else:
                balance = balance_of(member)
                text = _("Redeemed %(right)s for %(points)s points; %(available)s points left.") % {
                    "right": redemption.right.name, "points": redemption.points, "available": balance.available}
                if coupon is not None:
                    text += " " + _("Coupon %(code)s (%(coupon)s) is the member's.") % {"code": coupon.code, "coupon": coupon.describe()}
                user_messages.success(request, text)
                return HttpResponseRedirect(reverse("admin:crm_member_change", args=[member.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": member,
            "title": _("Redeem points"),
            "form": form,
            "balance": balance_of(member),
        }
        return TemplateResponse(request, "admin/crm/member/redeem.html", context)

    @admin.display(description=_("latest messages"))
    def messages(self, member: Member) -> str:
        if not member.pk:
            return "-"
        deliveries = list(Delivery.objects.filter(member=member).select_related("campaign").order_by("-created_at", "-id")[:MESSAGES_ON_PAGE])
        coupons = {c.delivery_id: c for c in Coupon.objects.filter(delivery__in=deliveries).select_related("category")}
        if not deliveries:
            return _("No campaign has reached this member yet.")
        return format_html(
            '<ol class="crm-timeline">{}</ol>',
            format_html_join(
                "",
                "<li><time>{}</time> {} · {} <span class='crm-muted'>{}</span> {}</li>",
                (
                    (
                        admin.utils.display_for_value(d.sent_at or d.due_at, "-"),
                        d.campaign.name,
                        d.get_status_display(),
                        d.get_skip_reason_display() if d.skip_reason else "",
                        _coupon_text(coupons.get(d.pk)),
                    )
                    for d in deliveries
                ),
            ),
        )

    @admin.display(description=_("coupons"))
    def coupons(self, member: Member) -> str:
        """The member's latest coupons of any origin (a campaign's message, a journey step, points
        spent on a coupon right, friends invited), latest validity first, by the (member, valid until) index."""
        if not member.pk:
            return "-"
        coupons = list(Coupon.objects.filter(member=member).select_related("campaign", "category").order_by("-valid_until", "-id")[:COUPONS_ON_PAGE])
        if not coupons:
            return _("No coupons yet.")
        bought = dict(Redemption.objects.filter(member=member, coupon_id__in=[c.pk for c in coupons]).values_list("coupon_id", "right__name"))
        invited = dict(InviteReward.objects.filter(member=member, coupon_id__in=[c.pk for c in coupons]).values_list("coupon_id", "friends"))

        def origin(coupon: Coupon) -> str:
            if coupon.campaign_id:
                return coupon.campaign.name
            if coupon.pk in bought:
                return _("points: %(right)s") % {"right": bought[coupon.pk]}
            if coupon.pk in invited:
                return _("invite reward: %(friends)d friends") % {"friends": invited[coupon.pk]}
            return "-"

        return format_html(
            '<table class="crm-inline-table" data-testid="coupons"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            _("coupon"), pgettext_lazy("coupon", "code"), _("valid until"), _("state"), pgettext_lazy("coupon", "from"),
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((c.describe(), c.code, admin.utils.display_for_value(c.valid_until, "-"), c.state(), origin(c)) for c in coupons),
            ),
        )

    @admin.display(description=_("friends invited"))
    def invites(self, member: Member) -> str:
        """Where he stands in the invite programme (邀请有礼): what staff need when he asks after a reward."""
        if not member.pk:
            return "-"
        progress = invite_progress(member)
        said = {"friends": progress.friends, "day": date_format(progress.counts_from, "DATE_FORMAT")}
        if not progress.active:
            text = _("%(friends)d friends invited since %(day)s; the invite programme is off, so they earn nothing for now.") % said
        elif progress.next_friends is None:
            text = _("%(friends)d friends invited since %(day)s: every reward reached.") % said
        else:
            text = _("%(friends)d friends invited since %(day)s; the next reward, ¥%(value)s, comes at %(next)d friends (%(missing)d to go).") % {
                **said, "missing": progress.friends_missing, "value": _yuan(progress.next_value), "next": progress.next_friends,
            }
        return format_html('<p data-testid="invites">{}</p>', text)


class RedeemForm(forms.Form):
    right = forms.ModelChoiceField(queryset=Right.objects.none(), label=_("right"), empty_label=None)
    # Drawn when the form is shown: a second click or a resubmitted page redeems once.
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, rights: list[Right], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["right"].queryset = Right.objects.filter(pk__in=[right.pk for right in rights])
        self.fields["right"].label_from_instance = lambda right: f"{right.name}（{right.points_cost} 积分）"
        self.fields["key"].initial = uuid.uuid4().hex


def _coupon_text(coupon: Coupon | None) -> str:
    if coupon is None:
        return ""
    return f"{coupon.describe()} {coupon.code} ({coupon.state()})"
