"""The tier ladder as pure functions over plain values (no database).

A rung's conditions are lower bounds that must all hold; the ladder is read
from the highest rank down and the first rung whose conditions hold wins. The
catch-all rung takes everyone else, including members who never ordered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Rung:
    id: int
    code: str
    name: str
    rank: int
    is_catch_all: bool = False
    max_recency_days: int | None = None
    orders_strict: bool = True  # F > n (True) or F >= n (False)
    orders_365: int | None = None
    spend_strict: bool = False
    spend_365: Decimal | None = None

    @property
    def min_orders(self) -> int | None:
        """The smallest order count that qualifies."""
        if self.orders_365 is None:
            return None
        return self.orders_365 + 1 if self.orders_strict else self.orders_365

    @property
    def min_spend(self) -> Decimal | None:
        """The smallest spend (to the fen) that qualifies."""
        if self.spend_365 is None:
            return None
        return self.spend_365 + CENT if self.spend_strict else self.spend_365


@dataclass(frozen=True)
class RFM:
    recency_days: int | None  # None: never ordered
    orders_365: int
    spend_365: Decimal


@dataclass(frozen=True)
class Gap:
    """What is missing to reach a rung: more spend, more orders, or an order soon enough."""

    rung: Rung
    spend: Decimal
    orders: int
    needs_recent_order: bool


class LadderError(ValueError):
    pass


def ladder_validate(rungs: Iterable[Rung]) -> list[Rung]:
    """Sorted from the top; exactly one catch-all, and it is the lowest rung."""
    ordered = sorted(rungs, key=lambda rung: rung.rank, reverse=True)
    ranks = [rung.rank for rung in ordered]
    if len(set(ranks)) != len(ranks):
        raise LadderError("ranks must be unique")
    catch_alls = [rung for rung in ordered if rung.is_catch_all]
    if len(catch_alls) != 1:
        raise LadderError("exactly one tier must be the catch-all")
    if ordered[-1] is not catch_alls[0]:
        raise LadderError("the catch-all tier must have the lowest rank")
    return ordered


def qualifies(rfm: RFM, rung: Rung) -> bool:
    if rung.is_catch_all:
        return True
    if rfm.recency_days is None:
        return False
    if rung.max_recency_days is not None and rfm.recency_days > rung.max_recency_days:
        return False
    if rung.min_orders is not None and rfm.orders_365 < rung.min_orders:
        return False
    if rung.min_spend is not None and rfm.spend_365 < rung.min_spend:
        return False
    return True


def tier_for(rfm: RFM, ladder: Sequence[Rung]) -> Rung:
    """ladder sorted from the top (ladder_validate)."""
    for rung in ladder:
        if qualifies(rfm, rung):
            return rung
    raise LadderError("the ladder has no catch-all tier")


def gap_to_next(rfm: RFM, current: Rung, ladder: Sequence[Rung]) -> Gap | None:
    """What the member lacks for the rung just above current (None at the top)."""
    above = [rung for rung in ladder if rung.rank > current.rank]
    if not above:
        return None
    target = min(above, key=lambda rung: rung.rank)
    spend = max(Decimal("0"), (target.min_spend or Decimal("0")) - rfm.spend_365)
    orders = max(0, (target.min_orders or 0) - rfm.orders_365)
    needs_recent = target.max_recency_days is not None and (
        rfm.recency_days is None or rfm.recency_days > target.max_recency_days
    )
    return Gap(rung=target, spend=spend, orders=orders, needs_recent_order=needs_recent)


def recency_days(last_order_date: dt.date | None, as_of: dt.date) -> int | None:
    if last_order_date is None:
        return None
    return (as_of - last_order_date).days
