"""/api/v1/: the shop's door (DOMAIN.md section 9). Thin: every operation checks
its key and scope (KeyAuth), then calls a service and shapes its answer."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Query, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from api import schemas
from api.ingest import ingest
from api.keys import client_for_key, rate_limited, signed
from api.models import IdempotentAnswer, Scope
from api.problems import Problem, problem_response, pydantic_errors
from api.standing import coupon_out, member_read, standing_of
from campaigns.checkout import BasketLine, coupon_check, coupon_redeem
from campaigns.invites.models import InviteReward
from campaigns.invites.services import invite_progress
from campaigns.rewards import right_redeem
from crm.models import Member
from crm.replica import stale_reads
from loyalty.models import Right
from loyalty.services import RedemptionError, balance_of

REFUSALS = {code: schemas.Problem for code in (400, 401, 403, 404, 409, 413, 422, 429)}


class CrmApi(NinjaAPI):
    def get_openapi_schema(self, *args, **kwargs):
        """Refusals are RFC 9457 problem bodies: say so in the schema."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status).startswith("4") and "application/json" in content:
                        content["application/problem+json"] = content.pop("application/json")
        return schema


class KeyAuth(HttpBearer):
    """Authorization: Bearer <key>; the key's scope, its rate, the body's size and, when the client must sign, the signature."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request, token: str):
        client = client_for_key(token.strip())
        if client is None:
            raise Problem(401, "Unauthorized", _("The key is missing, unknown or revoked."), kind="unauthorized")
        request.api_client = client
        if self.scope not in client.scopes:
            raise Problem(403, "Forbidden", _("This key lacks the scope “%(scope)s”.") % {"scope": self.scope}, kind="scope")
        wait = rate_limited(client)
        if wait:
            raise Problem(429, "Too Many Requests", _("Over this key's rate of %(rate)d requests a minute.") % {"rate": client.rate_per_minute},
                          kind="rate-limited", headers={"Retry-After": str(wait)})
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.API_MAX_BODY_BYTES:
            raise _too_big()
        if client.require_signature and not signed(
            client, request.headers.get("X-Timestamp", ""), request.body, request.headers.get("X-Signature", "")
        ):
            raise Problem(401, "Unauthorized", _("The signature is missing, wrong or older than 5 minutes."), kind="signature")
        return client


def _too_big() -> Problem:
    return Problem(413, "Content Too Large", _("The body is larger than %(bytes)d bytes.") % {"bytes": settings.API_MAX_BODY_BYTES}, kind="too-large")


api = CrmApi(title="CRM shop API", version="1", description="Members, orders and events in; standing, coupons and points out (README: The shop's API).",
             urls_namespace="api-v1", docs_url="/docs/", openapi_url="/schema/")


@api.exception_handler(Problem)
def _problem(request, exc: Problem):
    return problem_response(exc)


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    return problem_response(Problem(422, "Unprocessable Content", _("The body or a parameter does not match the schema."), kind="invalid", errors=pydantic_errors(exc.errors)))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return problem_response(Problem(401, "Unauthorized", _("The key is missing, unknown or revoked."), kind="unauthorized"))


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return problem_response(Problem(exc.status_code, "Bad Request" if exc.status_code == 400 else "Error", str(exc), kind="malformed"))


@api.exception_handler(RequestDataTooBig)
def _request_too_big(request, exc):
    return problem_response(_too_big())


def _unknown_member() -> Problem:
    return Problem(404, "Not Found", _("No member with this member ID."), kind="unknown-member")


def _member(external_id: str) -> Member:
    member = Member.objects.filter(external_id=external_id, erased_at__isnull=True).first()
    if member is None:
        raise _unknown_member()
    return member


def _idempotent(request, operation: str, produce):
    """With an Idempotency-Key header, the first answer is kept and a retry gets it again (nothing done twice)."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return produce()
    if len(key) > 64:
        raise Problem(400, "Bad Request", _("An Idempotency-Key has at most 64 characters."), kind="idempotency-key")
    client = request.api_client
    fingerprint = hashlib.sha256(operation.encode() + b"\n" + request.body).hexdigest()
    earlier = IdempotentAnswer.objects.filter(client=client, key=key).first()
    if earlier is None:
        try:
            with transaction.atomic():
                answer = produce()
                IdempotentAnswer.objects.create(client=client, key=key, operation=operation, fingerprint=fingerprint, status=200, body=answer)
            return answer
        except IntegrityError:  # a concurrent request with the same key won: its answer stands, this one's work is rolled back
            earlier = IdempotentAnswer.objects.filter(client=client, key=key).first()
            if earlier is None:
                raise
    if earlier.fingerprint != fingerprint:
        raise Problem(422, "Unprocessable Content", _("This Idempotency-Key was used for another request."), kind="idempotency-key-reused")
    request.idempotent_replay = True
    return earlier.body


# In ------------------------------------------------------------------------------------------------------


def _ingest(request, kind: str, batch, valid_only: bool) -> dict:
    def produce() -> dict:
        items = [item.model_dump(exclude_unset=True, mode="python") for item in batch.items]  # lines become dicts too
        result = ingest(kind, items, valid_only=valid_only, source=f"API {request.api_client.name}")
        answer = result.as_dict()
        if not result.written:
            raise Problem(422, "Unprocessable Content", _("%(count)d items are not valid: nothing was written.") % {"count": answer["rejected"]},
                          kind="invalid-items", errors=answer["errors"])
        return answer

    return _idempotent(request, f"{kind}:{int(valid_only)}", produce)


class IngestOptions(schemas.BaseModel):
    valid_only: bool = False


@api.post("/members", auth=KeyAuth(Scope.INGEST), response={200: schemas.IngestAnswer, **REFUSALS}, url_name="members", tags=["in"], exclude_none=True)
def members_in(request, batch: schemas.MemberBatch, options: Query[IngestOptions]):
    """Members by member ID (external_id): new ones created, known ones updated, fields left out unchanged."""
    return _ingest(request, "members", batch, options.valid_only)


@api.post("/orders", auth=KeyAuth(Scope.INGEST), response={200: schemas.IngestAnswer, **REFUSALS}, url_name="orders", tags=["in"], exclude_none=True)
def orders_in(request, batch: schemas.OrderBatch, options: Query[IngestOptions]):
    """Orders by order number with their lines inline. A known order sent with only order_no and status (a refund) changes its status."""
    return _ingest(request, "orders", batch, options.valid_only)


@api.post("/events", auth=KeyAuth(Scope.INGEST), response={200: schemas.IngestAnswer, **REFUSALS}, url_name="events", tags=["in"], exclude_none=True)
def events_in(request, batch: schemas.EventBatch, options: Query[IngestOptions]):
    """Engagement events by member, kind and time."""
    return _ingest(request, "events", batch, options.valid_only)


# Out -----------------------------------------------------------------------------------------------------


@api.get("/members/{external_id}/standing", auth=KeyAuth(Scope.STANDING), response={200: schemas.StandingOut, **REFUSALS}, url_name="standing", tags=["out"])
def standing(request, external_id: schemas.PathText):
    """Tier, what the next tier needs, rights, growth value, points, open coupons and the offers of the tier.
    May be a few seconds stale: read from the replica when there is one."""
    with stale_reads():
        read = member_read(external_id)
        if read is None:
            raise _unknown_member()
        # Built to StandingOut by standing_of (schemathesis checks it in CI); answered as is, not validated
        # through pydantic again on every one of a thousand lookups a second.
        return JsonResponse(standing_of(read))


@api.get("/members/{external_id}/invites", auth=KeyAuth(Scope.STANDING), response={200: schemas.InvitesOut, **REFUSALS}, url_name="invites", tags=["out"])
def invites(request, external_id: schemas.PathText):
    """The member's invite-a-friend progress (邀请有礼): friends counted, the rewards given with their coupons, and what the next friends earn."""
    member = _member(external_id)
    progress = invite_progress(member)
    return {
        "external_id": member.external_id, "active": progress.active, "offer": progress.offer,
        "counts_from": progress.counts_from.isoformat(), "friends": progress.friends,
        "rewards": [
            {"friends": reward.friends, "value": f"{reward.value:.2f}", "given_at": timezone.localtime(reward.created_at).isoformat(),
             "coupon": coupon_out(reward.coupon) if reward.coupon else None}
            for reward in InviteReward.objects.filter(member=member).select_related("coupon__category").order_by("friends")
        ],
        "next": {"friends": progress.next_friends, "friends_missing": progress.friends_missing, "value": f"{progress.next_value:.2f}"}
        if progress.next_friends is not None else None,
    }


def _basket(lines) -> list[BasketLine] | None:
    if lines is None:
        return None
    basket = []
    for position, line in enumerate(lines):
        try:
            price = Decimal(str(line.unit_price))
        except ArithmeticError:
            price = Decimal("NaN")
        if not price.is_finite() or price < 0 or price >= Decimal("1e8"):
            raise Problem(422, "Unprocessable Content", _("Not an amount."), kind="invalid", errors=[{"index": -1, "field": f"lines[{position}].unit_price", "reason": _("not an amount")}])
        basket.append(BasketLine(sku=line.sku, quantity=line.quantity, unit_price=price, category=line.category))
    return basket


def _verdict(code: str, verdict) -> dict:
    return {
        "code": code.strip().upper(), "valid": verdict.valid, "reason": verdict.reason, "message": verdict.message,
        "discount": f"{verdict.discount:.2f}", "terms": verdict.coupon.describe() if verdict.coupon else "",
    }


@api.post("/coupons/{code}/validate", auth=KeyAuth(Scope.COUPONS), response={200: schemas.CouponAnswer, **REFUSALS}, url_name="coupon-validate", tags=["coupons"])
def coupon_validate(request, code: schemas.PathText, basket: schemas.CouponCheck):
    """Whether the coupon is good for this member and basket, and how much it takes off; why not, when not."""
    verdict = coupon_check(code=code, member=_member(basket.member_external_id), lines=_basket(basket.lines))
    return _verdict(code, verdict)


@api.post("/coupons/{code}/redeem", auth=KeyAuth(Scope.COUPONS), response={200: schemas.CouponAnswer, **REFUSALS}, url_name="coupon-redeem", tags=["coupons"])
def coupon_use(request, code: schemas.PathText, basket: schemas.CouponRedeem):
    """Redeem once, for an order number. The same order number again is a retry and succeeds again; another is refused (409)."""
    verdict = coupon_redeem(code=code, member=_member(basket.member_external_id), order_no=basket.order_no, lines=_basket(basket.lines))
    if not verdict.valid:
        raise Problem(404 if verdict.reason == "not_found" else 409, "Conflict" if verdict.reason != "not_found" else "Not Found", verdict.message, kind=f"coupon-{verdict.reason}")
    return _verdict(code, verdict)


@api.post("/members/{external_id}/points/redemptions", auth=KeyAuth(Scope.POINTS), response={201: schemas.RedemptionOut, **REFUSALS},
          url_name="points-redeem", tags=["points"])
def points_redemption(request, external_id: schemas.PathText, payload: schemas.RedemptionIn):
    """Spend points on a right of the member's tier (a coupon right makes his coupon). Idempotent by key: a retry gets the same redemption."""
    member = _member(external_id)
    key = (payload.key or request.headers.get("Idempotency-Key", "")).strip()
    if not key:
        raise Problem(400, "Bad Request", _("An idempotency key is required (the key field or the Idempotency-Key header)."), kind="idempotency-key")
    right = Right.objects.filter(pk=payload.right_id).select_related("tier").first()
    if right is None:
        raise Problem(404, "Not Found", _("No right with this id."), kind="unknown-right")
    try:
        redemption, coupon = right_redeem(member=member, right=right, key="api:" + hashlib.sha256(f"{request.api_client.pk}:{key}".encode()).hexdigest()[:40])
    except RedemptionError as error:
        raise Problem(409, "Conflict", str(error), kind="redemption-refused") from None
    return Status(201, {
        "redemption_id": redemption.pk, "right": right.name, "points": redemption.points,
        "points_available": balance_of(member).available, "coupon": coupon_out(coupon) if coupon else None,
    })
