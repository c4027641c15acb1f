"""Every API call counted per client and operation and logged as one line
without personal data: the route's pattern (not the path, which holds a
member ID or a coupon code), the status, the time and the client's id. The
time is also the answer's Server-Timing header."""

from __future__ import annotations

import logging
import time

from api import usage

logger = logging.getLogger("api")


class ApiCallMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        begun = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        operation = match.url_name if match and match.url_name else "unknown"
        client = getattr(request, "api_client", None)
        if client is not None:
            usage.count(client.pk, operation, response.status_code)
        logger.log(
            logging.WARNING if response.status_code >= 400 else logging.DEBUG,
            "%s %s %s %.1fms client=%s",
            request.method, "/" + match.route if match else "-", response.status_code, (time.perf_counter() - begun) * 1000, client.pk if client else "-",
        )
        response._has_been_logged = True  # Django's own 4xx/5xx line would print the path
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - begun) * 1000:.1f}"  # the server's share of a call's time
        return response
