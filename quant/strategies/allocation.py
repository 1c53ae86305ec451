"""Allocation strategies: buy-and-hold, cross-sectional momentum (12-1) and dual momentum, all month-end."""
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import find_column, month_ends

STRICT = ConfigDict(extra="forbid")


class BuyAndHoldParams(BaseModel):
    model_config = STRICT


def buy_and_hold(market, params: BuyAndHoldParams) -> pd.DataFrame:
    """One decision on the first bar where a member has a price: equal weights in those members, held.

    Members that join later are not bought and nothing is rebalanced: weights drift with prices.
    """
    close = market.close
    ready = close.notna().to_numpy() & market.member_mask().to_numpy()
    rows = np.flatnonzero(ready.any(axis=1))
    if not len(rows):
        return pd.DataFrame(columns=close.columns, dtype="float64")
    first = rows[0]
    weights = ready[first] / ready[first].sum()
    return pd.DataFrame([weights], index=close.index[[first]], columns=close.columns)


class MomentumParams(BaseModel):
    model_config = STRICT
    lookback_months: int = Field(12, ge=2, le=36, description="Months of return that rank the names")
    skip_months: int = Field(1, ge=0, le=3, description="Most recent months left out of the return (reversal)")
    top_n: int = Field(20, ge=1, le=200, description="How many names to hold")
    weighting: Literal["equal", "inverse_vol"] = Field(
        "equal", description="Equal weights, or weights proportional to 1 / volatility of daily returns")
    vol_window: int = Field(63, ge=10, le=252, description="Trading days of the volatility (inverse_vol)")

    @model_validator(mode="after")
    def _skip_inside_lookback(self):
        if self.skip_months >= self.lookback_months:
            raise ValueError(f"skip_months ({self.skip_months}) must be less than lookback_months ({self.lookback_months})")
        return self


def momentum_scores(close: pd.DataFrame, lookback_months: int, skip_months: int) -> pd.DataFrame:
    """Return from the month-end `lookback_months` ago to the month-end `skip_months` ago, at each month-end.

    Rows: the last bar of each month; NaN where either month-end close is missing.
    """
    at = month_ends(close.index)
    monthly = close.iloc[at]
    then = monthly.shift(lookback_months)
    recent = monthly.shift(skip_months)
    return (recent / then.where(then > 0) - 1.0)


def momentum(market, params: MomentumParams) -> pd.DataFrame:
    """At each month-end, the top_n members with a price by 12-1 (lookback/skip) return, all else to 0.

    Ranking ties go to the earlier column. Names that leave the universe are sold at the next month-end;
    with fewer eligible names than top_n the book holds fewer (equal weight = 1 / number held).
    """
    close = market.close
    scores = momentum_scores(close, params.lookback_months, params.skip_months)
    at = month_ends(close.index)
    eligible = scores.notna() & market.member_mask().iloc[at].to_numpy() & close.iloc[at].notna().to_numpy()
    if params.weighting == "inverse_vol":
        vol = close.pct_change(fill_method=None).rolling(params.vol_window, min_periods=params.vol_window).std()
        vol = vol.iloc[at]
        eligible &= (vol > 0).to_numpy()
    ranked = scores.where(eligible).rank(axis=1, ascending=False, method="first")
    chosen = (ranked <= params.top_n).to_numpy()
    if params.weighting == "inverse_vol":
        raw = np.where(chosen, 1.0 / vol.to_numpy(), 0.0)
    else:
        raw = chosen.astype("float64")
    total = raw.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(total > 0, raw / total, 0.0)
    targets = pd.DataFrame(weights, index=scores.index, columns=close.columns)
    # No decision before the first month with a full lookback: there is nothing to rank yet.
    return targets[eligible.any(axis=1).to_numpy()]


class DualMomentumParams(BaseModel):
    model_config = STRICT
    lookback_months: int = Field(12, ge=1, le=36, description="Months of return for both tests")
    top_n: int = Field(1, ge=1, le=20, description="How many of the best names to hold (relative momentum)")
    absolute_threshold: float = Field(
        0.0, ge=-1.0, le=1.0, description="A pick is held only if its lookback return is above this (absolute momentum)")
    defensive: str = Field("", max_length=40, description="Symbol held instead of a pick that fails the absolute "
                                                           "test (empty: cash)")


def dual_momentum(market, params: DualMomentumParams) -> pd.DataFrame:
    """At each month-end: rank members (the defensive asset excluded) by lookback return, take top_n;
    each pick above absolute_threshold gets 1 / top_n, each failing slot goes to the defensive asset (or
    stays cash when it has no price that day or none is named).
    """
    close = market.close
    defensive = find_column(close.columns, params.defensive) if params.defensive else None
    scores = momentum_scores(close, params.lookback_months, 0)
    at = month_ends(close.index)
    eligible = scores.notna() & market.member_mask().iloc[at].to_numpy() & close.iloc[at].notna().to_numpy()
    if defensive is not None:
        eligible[defensive] = False
    ranked = scores.where(eligible).rank(axis=1, ascending=False, method="first")
    chosen = (ranked <= params.top_n).to_numpy()
    passing = chosen & (scores.to_numpy() > params.absolute_threshold)
    weights = passing / params.top_n
    failing = params.top_n - passing.sum(axis=1)
    if defensive is not None:
        column = close.columns.get_loc(defensive)
        priced = close.iloc[at, column].notna().to_numpy()
        weights[:, column] = np.where(priced, failing / params.top_n, 0.0)
    targets = pd.DataFrame(weights, index=scores.index, columns=close.columns)
    return targets[eligible.any(axis=1).to_numpy()]
