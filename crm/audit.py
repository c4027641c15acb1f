"""The audit log: written explicitly by the code that exports, reveals or changes."""

from __future__ import annotations

from typing import Any

from django.db import models

from crm.models import AuditEvent


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    actor,
    action: str,
    summary: str,
    obj: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    request=None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        summary=summary[:255],
        detail=detail or {},
        ip_address=client_ip(request),
    )


