"""Members' rights under PIPL: what is held about a member, and erasure.

Other apps add their sections (tier history, deliveries, …) to SECTIONS, and
what erasure must also remove to ERASE_HOOKS, in their AppConfig.ready(), so
that one export holds everything and one erasure reaches everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from crm.audit import audit_record
from crm.masking import mask_mobile
from crm.models import AuditAction, Member, MemberTag
from crm.services import consent_set

ERASED_NAME = "已注销会员"


def _profile(member: Member) -> dict[str, Any]:
    return {
        "external_id": member.external_id,
        "name": member.name,
        "mobile": member.mobile,
        "wechat_unionid": member.wechat_unionid,
        "email": member.email,
        "gender": member.gender,
        "birthday": member.birthday.isoformat() if member.birthday else None,
        "age_band": member.age_band,
        "household": {
            "lives_alone": member.lives_alone,
            "has_elderly": member.has_elderly,
            "has_children": member.has_children,
            "works_late": member.works_late,
        },
        "registered_at": member.registered_at.isoformat() if member.registered_at else None,
        "source_channel": member.source_channel,
        "community": member.community.name if member.community else None,
        "tags": sorted(member.tags.values_list("name", flat=True)),
        "personalisation_opt_out": member.personalisation_opt_out,
        "erased_at": member.erased_at.isoformat() if member.erased_at else None,
    }


def _consents(member: Member) -> dict[str, Any]:
    return {
        "current": [
            {"channel": c.channel, "granted": c.granted, "changed_at": c.changed_at.isoformat(), "source": c.source}
            for c in member.consents.order_by("channel")
        ],
        "history": [
            {"channel": e.channel, "granted": e.granted, "at": e.occurred_at.isoformat(), "source": e.source}
            for e in member.consent_events.order_by("occurred_at", "id")
        ],
    }


def _orders(member: Member) -> list[dict[str, Any]]:
    orders = member.orders.order_by("ordered_at").prefetch_related("lines__product__category")
    return [
        {
            "order_no": order.order_no,
            "ordered_at": order.ordered_at.isoformat(),
            "amount": str(order.amount),
            "status": order.status,
            "channel": order.channel,
            "coupon_code": order.coupon_code,
            "lines": [
                {
                    "sku": line.product.sku,
                    "product": line.product.name,
                    "category": line.product.category.name if line.product.category else None,
                    "quantity": line.quantity,
                    "unit_price": str(line.unit_price),
                    "is_promo": line.is_promo,
                }
                for line in order.lines.all()
            ],
        }
        for order in orders.iterator(chunk_size=500)
    ]


def _engagement(member: Member) -> list[dict[str, Any]]:
    return [
        {"kind": e.kind, "at": e.occurred_at.isoformat(), "count": e.count}
        for e in member.engagement_events.order_by("occurred_at")
    ]


SECTIONS: list[tuple[str, Callable[[Member], Any]]] = [
    ("profile", _profile),
    ("consents", _consents),
    ("orders", _orders),
    ("engagement", _engagement),
]
# Called with the member inside the erasure's transaction.
ERASE_HOOKS: list[Callable[[Member], None]] = []


def member_personal_data(*, member: Member, actor, reason: str, request=None) -> dict[str, Any]:
    """Everything held about one member (PIPL art. 45), logged in the audit log."""
    data = {
        "exported_at": timezone.now().isoformat(),
        "request_reason": reason,
        **{name: build(member) for name, build in SECTIONS},
    }
    audit_record(
        actor=actor,
        action=AuditAction.PERSONAL_DATA_EXPORT,
        summary=f"{member.external_id}",
        obj=member,
        detail={"reason": reason, "sections": [name for name, _ in SECTIONS]},
        request=request,
    )
    return data


@transaction.atomic
def member_erase(*, member: Member, actor, reason: str, request=None) -> None:
    """Erase on request (PIPL art. 47): personal fields are blanked; orders,
    amounts and aggregates stay; consent history stays as proof, and every
    channel is withdrawn so that nothing is sent to the member again."""
    source = f"erasure: {reason}"[:120]
    for channel in list(member.consents.filter(granted=True).values_list("channel", flat=True)):
        consent_set(member=member, channel=channel, granted=False, source=source)
    MemberTag.objects.filter(member=member).delete()
    masked = mask_mobile(member.mobile)
    member.name = ERASED_NAME
    member.mobile = ""
    member.wechat_unionid = ""
    member.email = ""
    member.birthday = None
    member.age_band = ""
    member.gender = "U"
    member.lives_alone = member.has_elderly = member.has_children = member.works_late = False
    member.personalisation_opt_out = True
    member.personalisation_opt_out_at = member.personalisation_opt_out_at or timezone.now()
    member.erased_at = timezone.now()
    member.save()
    for hook in ERASE_HOOKS:
        hook(member)
    audit_record(
        actor=actor,
        action=AuditAction.ERASURE,
        summary=f"{member.external_id} ({masked})",
        obj=member,
        detail={"reason": reason},
        request=request,
    )


def mobile_reveal(*, member: Member, actor, reason: str, request=None) -> str:
    """The full number, for someone allowed to see it, with the reason logged."""
    audit_record(
        actor=actor,
        action=AuditAction.REVEAL_MOBILE,
        summary=f"{member.external_id} ({mask_mobile(member.mobile)})",
        obj=member,
        detail={"reason": reason},
        request=request,
    )
    return member.mobile
