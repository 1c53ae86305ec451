"""Momentum breakout in the Qullamaggie style: a big prior move, a tight base, a breakout on volume, an ATR stop.

`breakout_setups` holds the screen's rules as one pure function of the panels (the scanner's momentum
breakout screen asks the same questions; keep one implementation of them). `breakout` turns its signals
into positions: entry the bar after a breakout, exit after a close below the ATR stop set at the breakout
or below the trailing average, at most `max_positions` at a time.
"""
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .common import rolling_mean


class BreakoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    momentum_days: int = Field(63, ge=10, le=252, description="Bars of the prior move into the base")
    min_gain: float = Field(0.30, ge=0.05, le=5.0, description="Smallest prior move, e.g. 0.30 = +30%")
    base_days: int = Field(20, ge=3, le=120, description="Bars of the consolidation before the breakout")
    max_base_range: float = Field(0.15, ge=0.01, le=1.0, description="Widest base: highest high / lowest low - 1")
    volume_mult: float = Field(1.5, ge=0.0, le=10.0, description="Breakout volume at least this x the 50-bar average")
    trend_ma: int = Field(50, ge=5, le=250, description="The close must be above this moving average")
    atr_days: int = Field(14, ge=2, le=100, description="Bars of the average true range")
    atr_mult: float = Field(2.0, ge=0.25, le=10.0, description="Stop = breakout close - atr_mult x ATR")
    trail_ma: int = Field(20, ge=2, le=200, description="Exit after a close below this moving average")
    max_positions: int = Field(10, ge=1, le=100, description="Positions at once, each 1 / max_positions of equity")


VOLUME_DAYS = 50


def breakout_setups(close: pd.DataFrame, high: pd.DataFrame, low: pd.DataFrame, volume: pd.DataFrame,
                    params: BreakoutParams) -> pd.DataFrame:
    """True on the bars where a name breaks out of a tight base after a strong move (all panels aligned).

    On bar t, with the base the `base_days` bars before t:
    - prior move: close at the base's start / close `momentum_days` earlier - 1 >= min_gain;
    - tight base: highest high / lowest low of the base - 1 <= max_base_range;
    - breakout: close_t above the base's highest high;
    - volume_t >= volume_mult x mean volume of the 50 bars before t;
    - trend: close_t above its `trend_ma`-bar average.
    Missing data on any input makes the rule False.
    """
    base_high = high.shift(1).rolling(params.base_days, min_periods=params.base_days).max()
    base_low = low.shift(1).rolling(params.base_days, min_periods=params.base_days).min()
    start = close.shift(params.base_days)
    prior = start / close.shift(params.base_days + params.momentum_days).where(lambda v: v > 0) - 1.0
    average_volume = volume.shift(1).rolling(VOLUME_DAYS, min_periods=VOLUME_DAYS).mean()
    return ((prior >= params.min_gain)
            & (base_high / base_low.where(base_low > 0) - 1.0 <= params.max_base_range)
            & (close > base_high)
            & (volume >= params.volume_mult * average_volume)
            & (close > rolling_mean(close, params.trend_ma)))


def prior_move(close: pd.DataFrame, params: BreakoutParams) -> pd.DataFrame:
    """The prior move the setups rank by (stronger first when slots are short)."""
    return close.shift(params.base_days) / close.shift(params.base_days + params.momentum_days) - 1.0


def average_true_range(close, high, low, days):
    """Mean of the true range max(high - low, |high - previous close|, |low - previous close|) over `days`."""
    previous = close.shift(1)
    ranges = np.fmax(high - low, np.fmax((high - previous).abs(), (low - previous).abs()))
    return rolling_mean(ranges, days)


def breakout(market, params: BreakoutParams) -> pd.DataFrame:
    """Entries on breakout bars (members only), exits on the stop; target 1 / max_positions per position.

    The stop is fixed on the breakout bar: its close - atr_mult x ATR. A position is closed after the
    first later close below the stop or below the trailing average. When more names break out than
    slots are free, the strongest prior moves win. A name can re-enter only after its exit decision.
    The loop runs over the bars that have a breakout, not over every bar.
    """
    close, high, low, volume = market.close, market.high, market.low, market.volume
    setups = (breakout_setups(close, high, low, volume, params) & market.member_mask()).to_numpy()
    strength = prior_move(close, params).to_numpy()
    stop_at = (close - params.atr_mult * average_true_range(close, high, low, params.atr_days)).to_numpy()
    prices = close.to_numpy()
    below_trail = (close < rolling_mean(close, params.trail_ma)).to_numpy()
    n_bars, n_names = prices.shape
    exit_bar = np.full(n_names, -1)     # the exit decision bar of each name's latest position
    entered_bar = np.full(n_names, -1)
    entries, exits = [], []
    for t in np.flatnonzero(setups.any(axis=1)):
        holding = (entered_bar >= 0) & (entered_bar < t) & (exit_bar > t)
        free = params.max_positions - int(holding.sum())
        candidates = np.flatnonzero(setups[t] & ~holding & (exit_bar < t) & np.isfinite(stop_at[t]))
        if free <= 0 or not len(candidates):
            continue
        order = candidates[np.argsort(-np.nan_to_num(strength[t, candidates], nan=-np.inf), kind="stable")]
        for j in order[:free]:
            later = prices[t + 1:, j]
            hit = np.flatnonzero((later < stop_at[t, j]) | below_trail[t + 1:, j])
            x = t + 1 + hit[0] if len(hit) else n_bars
            entered_bar[j], exit_bar[j] = t, x
            entries.append((t, j))
            if x < n_bars:
                exits.append((x, j))
    weights = np.full((n_bars, n_names), np.nan)
    for t, j in entries:
        weights[t, j] = 1.0 / params.max_positions
    for x, j in exits:
        weights[x, j] = 0.0
    rows = np.isfinite(weights).any(axis=1)
    return pd.DataFrame(weights[rows], index=close.index[rows], columns=close.columns)
