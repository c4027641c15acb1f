"""A campaign's life (submit, approve, launch, cancel), coupon redemption and
unsubscribe replies. Admin views, commands and tasks call these."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audience
from campaigns.models import (
    PENDING,
    BannedWord,
    Campaign,
    CampaignStatus,
    Coupon,
    Delivery,
    DeliveryStatus,
    InboundReply,
    SendingPolicy,
    SkipReason,
)
from campaigns.templating import template_errors
from crm.audit import audit_record
from crm.bulkload import ANALYZE_AFTER_ROWS
from crm.models import AuditAction, Channel, Member, Order, OrderStatus
from crm.services import consent_set
from crm.validators import normalise_cn_mobile

UNSUBSCRIBE_WORDS = {"R", "T", "TD", "退订", "N"}
APPROVE_PERMISSION = "campaigns.approve_campaign"


def banned_words_in(text: str) -> list[str]:
    return [word for word in BannedWord.objects.values_list("word", flat=True) if word and word in text]


def campaign_problems(campaign: Campaign) -> list[str]:
    """Why a campaign cannot be submitted or approved yet (empty when it can)."""
    problems = []
    if not campaign.target_tiers.exists() and not campaign.target_circles.exists() and not campaign.target_product_id:
        problems.append(_("choose at least one tier or circle to target"))
    variants = list(campaign.variants.select_related("template"))
    if not variants:
        problems.append(_("add at least one message variant"))
    elif sum(v.share for v in variants) != 100:
        problems.append(_("the variants' shares add up to %(total)d%%, not 100%%") % {"total": sum(v.share for v in variants)})
    for variant in variants:
        template = variant.template
        if template.channel != campaign.channel:
            problems.append(_("variant %(label)s: the template is for another channel") % {"label": variant.label})
        for error in template_errors(template.body):
            problems.append(f"{variant.label}: {error}")
        words = banned_words_in(f"{template.subject}\n{template.body}")
        if words:
            problems.append(
                _("variant %(label)s: the template contains banned words: %(words)s") % {"label": variant.label, "words": "、".join(words)}
            )
    if campaign.coupon_kind and not (campaign.coupon_value or campaign.coupon_percent):
        problems.append(_("the coupon needs a value or a percentage"))
    return problems


def _audit(campaign: Campaign, user, summary: str, **detail) -> None:
    audit_record(actor=user, action=AuditAction.CAMPAIGN, summary=summary, obj=campaign, detail=detail)


@transaction.atomic
def campaign_submit(*, campaign: Campaign, user) -> None:
    if campaign.status != CampaignStatus.DRAFT:
        raise ValidationError(_("only a draft can be submitted"))
    problems = campaign_problems(campaign)
    if problems:
        raise ValidationError(problems)
    campaign.status, campaign.submitted_at = CampaignStatus.AWAITING, timezone.now()
    campaign.save(update_fields=["status", "submitted_at"])
    _audit(campaign, user, f"submitted {campaign.name}")


@transaction.atomic
def campaign_approve(*, campaign: Campaign, user) -> None:
    """A second person with the approve permission, never the author, schedules it."""
    if not user.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied(_("you may not approve campaigns"))
    if campaign.created_by_id == user.pk:
        raise PermissionDenied(_("a campaign is approved by someone other than its author"))
    if campaign.status != CampaignStatus.AWAITING:
        raise ValidationError(_("only a campaign awaiting approval can be approved"))
    problems = campaign_problems(campaign)
    if problems:
        raise ValidationError(problems)
    campaign.status = CampaignStatus.SCHEDULED
    campaign.approved_by, campaign.approved_at = user, timezone.now()
    campaign.save(update_fields=["status", "approved_by", "approved_at"])
    if campaign.crontab_id:
        _periodic_task_set(campaign, enabled=True)
    _audit(campaign, user, f"approved {campaign.name}")


@transaction.atomic
def campaign_reject(*, campaign: Campaign, user, reason: str) -> None:
    if not user.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied(_("you may not approve campaigns"))
    if campaign.status != CampaignStatus.AWAITING:
        raise ValidationError(_("only a campaign awaiting approval can be sent back"))
    campaign.status = CampaignStatus.DRAFT
    campaign.save(update_fields=["status"])
    _audit(campaign, user, f"sent back {campaign.name}", reason=reason)


def _periodic_task_set(campaign: Campaign, *, enabled: bool) -> None:
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    if campaign.periodic_task_id is None:
        if not enabled:
            return
        campaign.periodic_task = PeriodicTask.objects.create(
            name=f"campaign {campaign.pk}: {campaign.name}"[:200],
            task="campaigns.tasks.campaign_launch_task",
            crontab=campaign.crontab,
            args=json.dumps([campaign.pk]),
        )
        campaign.save(update_fields=["periodic_task"])
    else:
        PeriodicTask.objects.filter(pk=campaign.periodic_task_id).update(enabled=enabled, crontab=campaign.crontab)
        PeriodicTasks.update_changed()  # bulk updates bypass the signal beat watches


def campaign_launch(*, campaign: Campaign, user=None, now: dt.datetime | None = None, force: bool = False) -> int:
    """Write the outbox rows for everyone in the audience not reached yet, then hand the due ones to workers.

    Launching again (a repeat, a retry, a second click) adds only members new
    to the audience: the unique (campaign, member) constraint and ON CONFLICT
    DO NOTHING make a second message impossible."""
    from campaigns.sending import dispatch, hand_out

    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        allowed = {CampaignStatus.SCHEDULED, CampaignStatus.SENDING} | ({CampaignStatus.DONE} if campaign.crontab_id else set())
        if campaign.status not in allowed:
            raise ValidationError(_("only an approved campaign can be launched (now: %(status)s)") % {"status": campaign.get_status_display()})
        if not force and not campaign.crontab_id and campaign.send_at and campaign.send_at > now:
            raise ValidationError(_("this campaign is scheduled for %(when)s") % {"when": timezone.localtime(campaign.send_at)})
        handed: list[int] = []
        created = audience.deliveries_create(campaign, now=now, policy=SendingPolicy.current(), handed=handed)
        campaign.last_launched_at = now
        if not campaign.crontab_id:
            campaign.status = CampaignStatus.SENDING
        campaign.save(update_fields=["last_launched_at", "status"])
        if user is not None:
            _audit(campaign, user, f"launched {campaign.name}", deliveries=created)
    transaction.on_commit(lambda: (_statistics_refresh(created), hand_out(handed), dispatch(now=now)))
    return created


def _statistics_refresh(created: int) -> None:
    """After a big launch, ANALYZE the outbox before the workers claim from it.

    Autovacuum analyzes a table only minutes after it grew; until then the
    planner thinks a million queued rows are a few hundred and answers each
    claim (a thousand ids) by intersecting with the status index: 2–3.5 s a
    batch instead of milliseconds, measured on a million-member launch. SQLite
    gathers no statistics by itself."""
    if created >= ANALYZE_AFTER_ROWS:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE campaigns_delivery")


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, user) -> int:
    if campaign.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED) and not campaign.crontab_id:
        raise ValidationError(_("this campaign is already over"))
    campaign.status, campaign.finished_at = CampaignStatus.CANCELLED, timezone.now()
    campaign.save(update_fields=["status", "finished_at"])
    if campaign.periodic_task_id:
        _periodic_task_set(campaign, enabled=False)
    stopped = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.SKIPPED, skip_reason=SkipReason.CANCELLED
    )
    _audit(campaign, user, f"cancelled {campaign.name}", stopped=stopped)
    return stopped


def campaigns_due(*, now: dt.datetime | None = None) -> int:
    """The periodic step: launch one-off campaigns whose time has come, hand due messages to workers, close finished campaigns."""
    from campaigns.sending import dispatch

    now = now or timezone.now()
    launched = 0
    for campaign in Campaign.objects.filter(status=CampaignStatus.SCHEDULED, crontab__isnull=True, last_launched_at__isnull=True).exclude(
        send_at__gt=now
    ):
        campaign_launch(campaign=campaign, now=now)
        launched += 1
    dispatch(now=now)
    busy = Delivery.objects.filter(campaign__status=CampaignStatus.SENDING, status__in=PENDING).values("campaign_id")
    Campaign.objects.filter(status=CampaignStatus.SENDING, crontab__isnull=True).exclude(pk__in=busy).update(
        status=CampaignStatus.DONE, finished_at=now
    )
    return launched


def delivery_reconcile(*, deliveries, delivered: bool, user) -> int:
    """Staff checked the gateway's receipts for rows whose outcome was unknown."""
    rows = deliveries.filter(status=DeliveryStatus.UNKNOWN)
    if delivered:
        count = rows.update(status=DeliveryStatus.SENT, error="")
    else:
        count = rows.update(status=DeliveryStatus.QUEUED, enqueued_at=None, claimed_at=None, sent_at=None, due_at=timezone.now(), error="")
    audit_record(actor=user, action=AuditAction.CAMPAIGN, summary=f"reconciled {count} deliveries: {'sent' if delivered else 'resend'}")
    return count


def coupons_redeem(*, order_ids: list[int] | None = None, member_ids: list[int] | None = None) -> int:
    """Link paid orders that carry one of our codes to the coupon: same member,
    within validity, once. Returns how many coupons were redeemed now.

    Of these orders, or these members' orders (an import's: read through the
    member index), or (neither) every order: a scan of them all, 80 s at 20M."""
    orders = Order.objects.exclude(coupon_code="").filter(status=OrderStatus.PAID)
    if order_ids is not None:
        orders = orders.filter(pk__in=order_ids)
    if member_ids is not None:
        orders = orders.filter(member_id__in=member_ids)
    orders = orders.filter(coupon_code__in=Coupon.objects.filter(redeemed_at__isnull=True).values("code"))
    redeemed = 0
    orders = orders.order_by("ordered_at", "pk").only("pk", "member_id", "coupon_code", "ordered_at")
    # A few orders of some members: one plain query. Through a server-side cursor PostgreSQL plans
    # for the first rows and walked all 20M orders in time order (60 s for 1,000 members).
    scoped = order_ids is not None or member_ids is not None
    for order in (list(orders) if scoped else orders.iterator(chunk_size=2000)):
        redeemed += Coupon.objects.filter(
            code=order.coupon_code,
            member_id=order.member_id,
            redeemed_at__isnull=True,
            valid_from__lte=order.ordered_at,
            valid_until__gte=order.ordered_at,
        ).exclude(pk__in=Coupon.objects.filter(order_id=order.pk).values("pk")).update(redeemed_at=order.ordered_at, order_id=order.pk)
    # Coupons the shop redeemed at checkout (the API) get their order once it arrives.
    at_checkout = Coupon.objects.filter(order__isnull=True).exclude(redeemed_order_no="")
    placed = Order.objects.filter(order_no__in=at_checkout.values("redeemed_order_no"))
    if order_ids is not None:
        placed = placed.filter(pk__in=order_ids)
    if member_ids is not None:
        placed = placed.filter(member_id__in=member_ids)
    for order_id, order_no in placed.values_list("pk", "order_no"):
        at_checkout.filter(redeemed_order_no=order_no).exclude(pk__in=Coupon.objects.filter(order_id=order_id).values("pk")).update(order_id=order_id)
    return redeemed


def _is_unsubscribe(text: str) -> bool:
    # NFKC: a phone's full-width Ｒ or ＴＤ is R or TD.
    cleaned = re.sub(r"[\s。.!！,，]", "", unicodedata.normalize("NFKC", text or "")).upper()
    return cleaned in UNSUBSCRIBE_WORDS


def reply_receive(*, mobile: str, text: str, source: str, received_at: dt.datetime | None = None) -> InboundReply:
    """An SMS reply: R, T, TD or 退订 withdraws that number's SMS consent at once."""
    mobile = normalise_cn_mobile(mobile or "")[:11]
    received_at = received_at or timezone.now()
    members = list(Member.objects.filter(mobile=mobile, erased_at__isnull=True)) if mobile else []
    unsubscribe = _is_unsubscribe(text)
    with transaction.atomic():
        if unsubscribe:
            for member in members:
                consent_set(member=member, channel=Channel.SMS, granted=False, source=f"SMS reply “{text.strip()[:10]}” ({source})")
            Delivery.objects.filter(
                member__in=members, channel=Channel.SMS, is_marketing=True, status=DeliveryStatus.QUEUED
            ).update(status=DeliveryStatus.SKIPPED, skip_reason=SkipReason.NO_CONSENT)
        return InboundReply.objects.create(
            received_at=received_at, mobile=mobile, text=text[:500], member=members[0] if members else None,
            unsubscribed=unsubscribe and bool(members), source=source[:40],
        )


def coupon_totals(campaign: Campaign) -> dict:
    coupons = Coupon.objects.filter(campaign=campaign)
    redeemed = coupons.filter(redeemed_at__isnull=False)
    return {
        "issued": coupons.count(),
        "redeemed": redeemed.count(),
        # SQLite sums decimals to a float-like Decimal ("11020.8900000000"): shown as money, to the fen.
        "redeemed_revenue": Decimal(redeemed.aggregate(total=Sum("order__amount"))["total"] or 0).quantize(Decimal("0.01")),
    }
