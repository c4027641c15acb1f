"""RFC 9457 problem bodies for every refusal the API gives."""

from __future__ import annotations

from django.http import JsonResponse

PROBLEM_TYPE = "https://crm.example/problems/"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", *, kind: str = "", errors: list[dict] | None = None, headers: dict | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail or title
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors, self.headers = errors, headers or {}

    def body(self) -> dict:
        body = {"type": PROBLEM_TYPE + self.kind, "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def problem_response(problem: Problem) -> JsonResponse:
    response = JsonResponse(problem.body(), status=problem.status, content_type="application/problem+json", json_dumps_params={"ensure_ascii": False})
    for name, value in problem.headers.items():
        response[name] = value
    return response


def pydantic_errors(errors: list[dict]) -> list[dict]:
    """ninja's validation errors as (index, field, reason): the item's index in the batch, the field's dotted path."""
    out = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
        if loc and loc[0] in ("batch", "payload", "basket"):
            loc = loc[1:]
        index = -1
        if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
            index, loc = loc[1], loc[2:]
        field = ""
        for part in loc:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        out.append({"index": index, "field": field, "reason": str(error.get("msg", "invalid"))})
    return out
