import json

import pytest

from api.keys import client_create


@pytest.fixture
def make_key(db):
    def make(name: str = "mini-program", scopes=("ingest", "standing", "coupons", "points"), **options):
        return client_create(name=name, scopes=list(scopes), **options)

    return make


@pytest.fixture
def call(client, make_key):
    """call(method, path, body=None, key=..., **headers) against /api/v1/ with a key of every scope."""
    _client, default_key = make_key()

    def send(method: str, path: str, body=None, *, key: str | None = None, raw: bytes | None = None, **headers):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        if key is not False:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {key or default_key}"
        handler = getattr(client, method.lower())
        if data is None:
            return handler(f"/api/v1{path}", **extra)
        return handler(f"/api/v1{path}", data=data, content_type="application/json", **extra)

    return send


@pytest.fixture(autouse=True)
def _fresh_usage_counts():
    """Each server process counts calls in memory; a test starts with none from the ones before."""
    from api import usage

    with usage._lock:
        usage._counts.clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Clients, their rate counts and the standing's ladder, rights and offers are kept per process; each test starts without."""
    from api.keys import clients_forget, rates_forget
    from api.standing import static_forget

    for forget in (clients_forget, rates_forget, static_forget):
        forget()
    yield
    for forget in (clients_forget, rates_forget, static_forget):
        forget()
