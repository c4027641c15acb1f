"""Stages 5 and 6: the V score (seg_v) and the churn probability, expected
orders and risk band (seg_churn), scored with numpy over the fitted model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from crm.bulkload import load_rows
from segments import churn
from segments.models import ChurnFit, RiskBand, SegmentSettings
from segments.recompute.base import (
    CHURN_HORIZON_DAYS,
    Bounds,
    member_filter_sql,
    stored_copy,
    tables_analyze,
    vendor_sql,
)


def v_stage(cursor, bounds: Bounds, config: SegmentSettings, full: bool, stored: bool = False) -> None:
    """seg_v: V from weighted shares, invites, group messages and organised group-buys in the window (members with events);
    the stored V of the members in scope whose events did not change."""
    weights = {
        "share": config.v_weight_share,
        "invite": config.v_weight_invite,
        "group_message": config.v_weight_group_message,
        "organised_group_buy": config.v_weight_group_buy,
    }
    case = "CASE e.kind " + " ".join("WHEN %s THEN %s" for _ in weights) + " ELSE 0 END"
    params: list = [value for pair in weights.items() for value in pair]
    cursor.execute(
        f"""CREATE TEMP TABLE seg_v AS
            SELECT e.member_id AS member_id, ROUND(SUM(e.count * {case}), 2) AS v_score FROM crm_engagementevent e
            WHERE e.occurred_at >= %s AND e.occurred_at < %s{member_filter_sql(full, "e.member_id", only="events = 1")}
            GROUP BY e.member_id""",  # nosec B608
        params + [bounds.window_start, bounds.end],
    )
    stored_copy(cursor, "seg_v", {"v_score": "m.v_score"}, stored, skipped="s.events = 0 AND m.v_score <> 0")
    tables_analyze(cursor, "seg_v")


@dataclass(frozen=True)
class ChurnInputs:
    member_ids: np.ndarray
    x: np.ndarray
    t_x_days: np.ndarray
    T_days: np.ndarray  # noqa: N815
    stored_band: np.ndarray | None = None  # the stored risk band (from the stored metrics only)


def _day_number(column: str) -> str:
    """The local date of a timestamp as Python's date.toordinal(), in SQL: a
    million members' dates converted in Python took eight seconds."""
    return vendor_sql(
        f"(({column} AT TIME ZONE '{settings.TIME_ZONE}')::date - DATE '0001-01-01' + 1)",
        f"CAST(julianday(date({column}, '+8 hours')) - julianday('0001-01-01') + 1 AS INTEGER)",
    )


BANDS = ("", *RiskBand.values)  # a risk band's number in a fetched array: none, low, medium, high


def churn_inputs(cursor, as_of: dt.date, *, staged: bool) -> ChurnInputs:
    """x, t_x and T in days for members with a paid order: of this run's
    members from its own tables (staged), or of everyone from the stored
    metrics, with their stored risk band."""
    if staged:
        cursor.execute(
            f"SELECT r.member_id, h.repeat_days, {_day_number('r.first_at')}, {_day_number('r.last_at')} FROM seg_rfm r "
            f"JOIN seg_habits h ON h.member_id = r.member_id WHERE r.first_at IS NOT NULL"  # nosec B608
        )
    else:
        band = "CASE risk_band " + " ".join(f"WHEN '{name}' THEN {number}" for number, name in enumerate(BANDS) if name) + " ELSE 0 END"
        cursor.execute(
            f"SELECT member_id, repeat_days, {_day_number('first_order_at')}, {_day_number('last_order_at')}, {band} "
            f"FROM segments_membermetrics WHERE first_order_at IS NOT NULL"  # nosec B608
        )
    rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 4 if staged else 5)
    first, last = rows[:, 2].astype(float), rows[:, 3].astype(float)
    return ChurnInputs(rows[:, 0], rows[:, 1].astype(float), last - first, as_of.toordinal() - first, None if staged else rows[:, 4])


def churn_scores(inputs: ChurnInputs, fit: ChurnFit | None, config: SegmentSettings) -> tuple[np.ndarray, np.ndarray]:
    """(P(alive), expected orders in the next 30 days) per member, from the fit or the heuristic."""
    if inputs.x.size == 0:
        return np.zeros(0), np.zeros(0)
    if fit is not None:
        unit = 7.0 if fit.time_unit == "week" else 1.0
        params = (fit.r, fit.alpha, fit.a, fit.b)
        x, t_x, T = inputs.x, inputs.t_x_days / unit, inputs.T_days / unit  # noqa: N806
        return (
            churn.p_alive(fit.model, params, x, t_x, T),
            churn.expected_purchases(fit.model, params, CHURN_HORIZON_DAYS / unit, x, t_x, T),
        )
    repeaters = inputs.x > 0
    own_gap = np.where(repeaters, inputs.t_x_days / np.maximum(inputs.x, 1), np.nan)
    shop_gap = float(np.nanmedian(own_gap)) if repeaters.any() else 30.0
    gap = np.where(repeaters, own_gap, shop_gap)
    return churn.heuristic(inputs.T_days - inputs.t_x_days, gap, CHURN_HORIZON_DAYS)


BAND_HORIZON_DAYS = 3650  # a band that holds longer than this is stored as not moving (the weekly full run looks again)


def band_moves(inputs: ChurnInputs, p: np.ndarray, fit: ChurnFit | None, config: SegmentSettings, as_of: dt.date) -> np.ndarray:
    """The day (date.toordinal()) on which each member's risk band moves if he
    does not order again, 0 for not within BAND_HORIZON_DAYS, all 0 under the
    heuristic (nightly_scope then scores everyone). With x and t_x fixed,
    P(alive) only falls as days pass: the band moves when it first drops below
    the next cut-off, solved for T and settled on the test the scores use."""
    if fit is None or inputs.x.size == 0:
        return np.zeros(inputs.x.size, dtype=np.int64)
    unit = 7.0 if fit.time_unit == "week" else 1.0
    params = (fit.r, fit.alpha, fit.a, fit.b)
    cut = np.where(p >= config.risk_medium_below, config.risk_medium_below, np.where(p >= config.risk_high_below, config.risk_high_below, 0.0))
    t_x = inputs.t_x_days / unit
    crossing = churn.p_alive_below_after(fit.model, params, inputs.x, t_x, cut) * unit  # in days after the first order
    today = inputs.T_days
    moves = (crossing < today + BAND_HORIZON_DAYS) & (cut > 0)
    day = np.maximum(np.floor(np.where(moves, crossing, today)) + 1, today + 1)

    def moved(days: np.ndarray) -> np.ndarray:
        return churn.p_alive(fit.model, params, inputs.x, t_x, days / unit) < cut

    for _ in range(2):  # the closed form and p_alive round differently by a hair at the cut-off
        day = np.where(moves & ~moved(day), day + 1, day)
        earlier = np.maximum(day - 1, today + 1)
        day = np.where(moves & (earlier < day) & moved(earlier), earlier, day)
    first = as_of.toordinal() - today
    return np.where(moves, first + day, 0).astype(np.int64)


def churn_stage(cursor, inputs: ChurnInputs, p: np.ndarray, expected: np.ndarray, moves: np.ndarray, config: SegmentSettings) -> None:
    """seg_churn: rounded scores, risk bands and the day each band moves (band_moves) of the members with a paid order."""
    cursor.execute(
        "CREATE TEMP TABLE seg_churn (member_id bigint PRIMARY KEY, p_alive double precision, expected double precision, band varchar(8), moves bigint)"
    )
    bands = churn.risk_band(p, high_below=config.risk_high_below, medium_below=config.risk_medium_below)
    load_rows(
        "seg_churn",
        ["member_id", "p_alive", "expected", "band", "moves"],
        zip(inputs.member_ids.tolist(), np.round(p, 3).tolist(), np.round(expected, 3).tolist(), bands.tolist(), moves.tolist()),
    )
    tables_analyze(cursor, "seg_churn")
