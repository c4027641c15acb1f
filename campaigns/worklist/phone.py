"""The group leader's pages for his phone (inside WeChat's browser): today's
worklist as cards, his members with a search, and a member's short card.

Same login, permissions and scoping as the admin: a page shows only what
crm.scoping lets the user see, and an outcome needs the admin's change
permission on worklist items. The number to call is masked everywhere; "call"
on a worklist item reveals it to the leader that item is for, for that member
only, audited with the item as the reason (leaders phone their own members)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from campaigns.invites.services import invite_progress
from campaigns.models import Coupon, _yuan
from campaigns.rendering import expiry_text
from campaigns.worklist.models import WorklistItem, WorklistOutcome
from crm.masking import mask_mobile
from crm.models import Member
from crm.privacy import mobile_reveal
from crm.scoping import scope_to_user
from loyalty.services import balance_of, rights_at
from segments.models import Tier
from segments.services import gap_of, gap_text

MEMBERS_PER_PAGE = 30
COUPONS_ON_CARD = 5
LOGIN = "admin:login"


def _needs(request, permission: str) -> None:
    if not request.user.is_staff or not request.user.has_perm(permission):
        raise PermissionDenied


def _today_items(request):
    items = scope_to_user(WorklistItem.objects.filter(day=timezone.localdate()), request.user, "member")
    return items.select_related("member", "member__metrics__tier", "community", "leader").order_by("-priority", "id")


def _card(member: Member) -> dict:
    metrics = getattr(member, "metrics", None)
    return {
        "member": member,
        "mobile": mask_mobile(member.mobile),
        "tier": metrics.tier.name if metrics and metrics.tier_id else "",
    }


@login_required(login_url=LOGIN)
def today(request):
    _needs(request, "campaigns.view_worklistitem")
    items = list(_today_items(request))
    context = {
        "title": _("Today's worklist"),
        "items": [{"item": item, **_card(item.member), "can_call": _may_call(request, item)} for item in items],
        "outcomes": WorklistOutcome.choices,
        "done": sum(1 for item in items if item.outcome),
        "can_mark": request.user.has_perm("campaigns.change_worklistitem"),
        "tab": "today",
    }
    return TemplateResponse(request, "leader/today.html", context)


@login_required(login_url=LOGIN)
@require_POST
def outcome(request, item_id: int):
    _needs(request, "campaigns.change_worklistitem")
    item = get_object_or_404(_today_items(request), pk=item_id)
    value = request.POST.get("outcome", item.outcome)
    if value not in WorklistOutcome.values and value != "":
        value = item.outcome
    item.outcome = value
    item.outcome_at = timezone.now() if value else None
    item.note = request.POST.get("note", item.note)[: WorklistItem._meta.get_field("note").max_length]
    item.save(update_fields=["outcome", "outcome_at", "note"])
    return HttpResponseRedirect(f"{reverse('leader:today')}#item-{item.pk}")


def _may_call(request, item: WorklistItem) -> bool:
    """A leader phones the members on his own list, today."""
    return bool(item.member.mobile) and item.leader.user_id == request.user.pk and item.day == timezone.localdate()


@login_required(login_url=LOGIN)
@require_POST
def call(request, item_id: int):
    _needs(request, "campaigns.view_worklistitem")
    item = get_object_or_404(_today_items(request), pk=item_id)
    if not _may_call(request, item):
        raise PermissionDenied
    number = mobile_reveal(
        member=item.member, actor=request.user, reason=f"worklist item {item.pk}: {item.get_kind_display()} ({item.day})", request=request
    )
    return member_page(request, item.member_id, revealed=number, item=item)


@login_required(login_url=LOGIN)
def members(request):
    _needs(request, "crm.view_member")
    query = request.GET.get("q", "").strip()[:40]
    found = scope_to_user(Member.objects.filter(erased_at__isnull=True), request.user, "").select_related("metrics__tier")
    if query:
        condition = Q(name__contains=query) | Q(external_id=query)
        if query.isdigit() and len(query) == 4:
            condition |= Q(mobile__endswith=query)
        found = found.filter(condition)
    page = Paginator(found.order_by("name", "pk"), MEMBERS_PER_PAGE).get_page(request.GET.get("p"))
    context = {"title": _("My members"), "query": query, "page": page, "cards": [_card(member) for member in page], "tab": "members"}
    return TemplateResponse(request, "leader/members.html", context)


@login_required(login_url=LOGIN)
def member(request, member_id: int):
    return member_page(request, member_id)


def member_page(request, member_id: int, *, revealed: str = "", item: WorklistItem | None = None):
    _needs(request, "crm.view_member")
    found = get_object_or_404(
        scope_to_user(Member.objects.filter(erased_at__isnull=True), request.user, "").select_related(
            "metrics__tier", "metrics__favourite_category", "metrics__second_category", "community"), pk=member_id
    )
    metrics = getattr(found, "metrics", None)
    balance = balance_of(found)  # as the member page shows it: past midnights the runs have not reached
    # What the member's tier gives him and what the next one adds: a leader offers the one and
    # names the other with the gap ("再买1次就升白银了，多享秒杀券").
    rights = rights_at(metrics.tier if metrics else None, Tier.objects.all())
    items = [
        {"item": entry, "can_call": _may_call(request, entry)}
        for entry in _today_items(request).filter(member=found)
    ]
    # The coupons he can still use, soonest ending first (a reason to call: "您的¥5券21号到期"), without codes.
    coupons = Coupon.objects.filter(member=found, redeemed_at__isnull=True, valid_until__gte=timezone.now()).select_related("category")
    coupons = [
        _("%(coupon)s, valid until %(day)s") % {"coupon": coupon.describe(), "day": expiry_text(coupon.valid_until)}
        for coupon in coupons.order_by("valid_until")[:COUPONS_ON_CARD]
    ]
    # Invites: what a leader can encourage ("再邀2位好友就得¥20券"), while the programme has a reward ahead.
    progress = invite_progress(found)
    invites = _("%(friends)d invited, %(missing)d to go for ¥%(value)s") % {
        "friends": progress.friends, "missing": progress.friends_missing, "value": _yuan(progress.next_value),
    } if progress.next_friends is not None else ""
    context = {
        "title": found.name or found.external_id,
        **_card(found),
        "metrics": metrics,
        "points": balance.available,
        "pending": balance.pending,
        "expiring": balance.expiring,
        "coupons": coupons,
        "invites": invites,
        "rights": "、".join(right.name for right in rights.mine),
        "next_tier": rights.next_tier,
        "next_adds": "、".join(right.name for right in rights.next_adds),
        "spend": f"{metrics.spend_365 if metrics else 0:,.2f}",  # as the admin and the gap write money
        # What a leader can say ("再买1次就升白银了") and offer: the gap to the next tier, the favourites.
        "gap": gap_text(gap_of(metrics)) if metrics else "",
        "favourites": metrics.favourites if metrics else "",
        "revealed": revealed,
        "called_item": item,
        "items": items,
        "tab": "members",
    }
    return TemplateResponse(request, "leader/member.html", context)
