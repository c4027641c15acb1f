"""Who falls in a campaign's control group or variant: a fixed draw per campaign.

Each member gets a bucket in [0, 10000) for each draw, taken from the first 32
bits of the MD5 digest of "<draw>:<owner id>:<member id>". The draw names the
split (a campaign's control group, its variants, a journey's control group)
and the owner is the campaign or journey, so:

- a relaunch, a repeat run and the dry run draw exactly the same members;
- two campaigns draw independently of each other. The earlier split was
  linear, (member id x multiplier + campaign id) mod a prime, so the next
  campaign shifted every member's bucket by one and held back nearly the same
  tenth of the base every time;
- a campaign's control group and its variant split are independent too.

The bucket is computed by the database when the launch selects its members
(PostgreSQL's md5(); on SQLite the function split_bucket, which register()
adds to every connection) and by Python for a split decided outside SQL (a
journey's enrolment): both give the same bucket. MD5 serves here as a mixer,
not for security."""

from __future__ import annotations

import hashlib

from django.db import connection

SCALE = 10000  # buckets: a share of n % holds the buckets below n * 100
CAMPAIGN_CONTROL, CAMPAIGN_VARIANT, JOURNEY_CONTROL = "campaign-control", "campaign-variant", "journey-control"


def _prefix(draw: str, owner_id: int) -> str:
    return f"{draw}:{owner_id}:"


def bucket(draw: str, owner_id: int, member_id: int) -> int:
    return _split_bucket(f"{_prefix(draw, owner_id)}{member_id}")


def bucket_sql(draw: str, owner_id: int, member_column: str = "m.id") -> tuple[str, list]:
    """The same bucket as a SQL expression over member_column, and its parameter.
    The % of the modulus is doubled: the fragment goes through cursor.execute with parameters."""
    if connection.vendor == "postgresql":
        return f"(('x' || substr(md5(%s || {member_column}::text), 1, 8))::bit(32)::bigint %% {SCALE})", [_prefix(draw, owner_id)]
    return f"split_bucket(%s || {member_column})", [_prefix(draw, owner_id)]


def _split_bucket(text: str) -> int:
    return int(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:8], 16) % SCALE


def register(sender, connection, **kwargs) -> None:
    """connection_created receiver: SQLite has no hex-to-integer cast, so the bucket is a function of ours."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("split_bucket", 1, _split_bucket, deterministic=True)
