"""manage.py api_key_create NAME --scopes ingest,standing,coupons,points

Prints the new key on its last line, once: only its hash is kept."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from api.keys import client_create
from api.models import ApiClient, Scope


class Command(BaseCommand):
    help = "Create an API client and print its key (shown once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(Scope.values)}")
        parser.add_argument("--rate", type=int, default=6000, help="requests per minute (default 6000)")
        parser.add_argument("--sign", action="store_true", help="require a signed body (prints the signing secret too)")
        parser.add_argument("--webhook-url", default="", help="where tier changes and new coupons are posted")

    def handle(self, *args, name: str, scopes: str, rate: int, sign: bool, webhook_url: str, **options) -> None:
        wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(f"a client named {name!r} exists already (revoke it in the admin, or choose another name)")
        if rate < 1:
            raise CommandError("--rate must be at least 1")
        try:
            client, key = client_create(name=name, scopes=wanted, rate_per_minute=rate, require_signature=sign, webhook_url=webhook_url)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"client {client.name} (id {client.pk}), scopes {', '.join(client.scopes)}, {client.rate_per_minute} requests a minute")
        if sign or webhook_url:
            self.stdout.write(f"signing secret (X-Signature = HMAC-SHA256 of 'timestamp.body'): {client.signing_secret}")
        self.stdout.write("the key, shown once:")
        self.stdout.write(key)
