"""The ladder of DOMAIN.md section 3, decided by the pure function, at every boundary."""

from decimal import Decimal

import pytest

from segments.ladder import RFM, LadderError, Rung, gap_to_next, ladder_validate, tier_for

S = Rung(1, "S", "铂金", 40, max_recency_days=30, orders_strict=True, orders_365=12, spend_strict=True, spend_365=Decimal("20000"))
A = Rung(2, "A", "黄金", 30, max_recency_days=60, orders_strict=True, orders_365=6, spend_strict=False, spend_365=Decimal("5000"))
B = Rung(3, "B", "白银", 20, max_recency_days=90, orders_strict=True, orders_365=2, spend_strict=False, spend_365=Decimal("1000"))
C = Rung(4, "C", "潜客/新客", 10, is_catch_all=True)
LADDER = ladder_validate([C, A, S, B])


@pytest.mark.parametrize(
    ("recency", "orders", "spend", "tier"),
    [
        # S: R <= 30, F > 12, M > 20,000
        (30, 13, "20000.01", "S"),
        (31, 13, "20000.01", "A"),
        (30, 12, "20000.01", "A"),
        (30, 13, "20000.00", "A"),
        (0, 100, "99999", "S"),
        # A: R <= 60, F > 6, M >= 5,000
        (60, 7, "5000.00", "A"),
        (61, 7, "5000.00", "B"),
        (60, 6, "5000.00", "B"),
        (60, 7, "4999.99", "B"),
        # B: R <= 90, F > 2, M >= 1,000
        (90, 3, "1000.00", "B"),
        (91, 3, "1000.00", "C"),
        (90, 2, "1000.00", "C"),
        (90, 3, "999.99", "C"),
        # A lot of money but few orders is gold, not prospect (DOMAIN.md).
        (10, 8, "25000", "A"),
        # Never ordered: prospect.
        (None, 0, "0", "C"),
    ],
)
def test_every_ladder_boundary(recency, orders, spend, tier):
    assert tier_for(RFM(recency, orders, Decimal(spend)), LADDER).code == tier


def test_the_gap_to_the_next_tier_names_spend_and_orders():
    rfm = RFM(recency_days=20, orders_365=5, spend_365=Decimal("4680"))
    current = tier_for(rfm, LADDER)
    gap = gap_to_next(rfm, current, LADDER)
    assert current.code == "B"
    assert (gap.rung.code, gap.spend, gap.orders, gap.needs_recent_order) == ("A", Decimal("320"), 2, False)
    # Buying exactly that much more reaches the next tier.
    assert tier_for(RFM(0, 7, Decimal("5000")), LADDER).code == "A"
    assert gap_to_next(RFM(1, 20, Decimal("30000")), S, LADDER) is None


def test_a_lapsed_member_is_told_to_order_again_soon():
    gap = gap_to_next(RFM(120, 10, Decimal("8000")), C, LADDER)
    assert gap.rung.code == "B" and gap.needs_recent_order and gap.spend == 0 and gap.orders == 0


@pytest.mark.parametrize(
    ("rungs", "message"),
    [
        ([S, A, B], "exactly one tier must be the catch-all"),
        ([S, C, Rung(9, "X", "x", 10, is_catch_all=True)], "ranks must be unique"),
        ([Rung(5, "Z", "z", 50, is_catch_all=True), S, B], "the catch-all tier must have the lowest rank"),
    ],
)
def test_a_broken_ladder_is_refused(rungs, message):
    with pytest.raises(LadderError, match=message):
        ladder_validate(rungs)
