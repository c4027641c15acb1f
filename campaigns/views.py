"""The endpoint an SMS gateway calls with members' replies (signed like our requests to it)."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.backends import signature_valid
from campaigns.services import reply_receive


@csrf_exempt  # a server-to-server call, authenticated by its HMAC signature instead of a session
@require_POST
def sms_replies(request):
    """Body: {"replies": [{"mobile": "138…", "text": "R", "received_at": "…"}]}; headers X-Timestamp, X-Signature."""
    body = request.body
    if not signature_valid(settings.GATEWAY_SECRET, request.headers.get("X-Timestamp", ""), body, request.headers.get("X-Signature", "")):
        return HttpResponseForbidden("bad signature")
    try:
        replies = json.loads(body)["replies"]
        if not isinstance(replies, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return HttpResponseBadRequest("expected {\"replies\": [...]}")
    unsubscribed = 0
    for item in replies:
        if not isinstance(item, dict) or not item.get("mobile"):
            continue
        received = parse_datetime(str(item.get("received_at") or "")) if item.get("received_at") else None
        if received is not None and timezone.is_naive(received):
            received = timezone.make_aware(received)
        reply = reply_receive(mobile=str(item["mobile"]), text=str(item.get("text", "")), source="gateway", received_at=received)
        unsubscribed += reply.unsubscribed
    return JsonResponse({"received": len(replies), "unsubscribed": unsubscribed})
