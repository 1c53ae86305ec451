"""Momentum breakout in the Qullamaggie style: the scanner's setup, entered on a breakout, left at an ATR stop.

The setup is the scanner's momentum-breakout screen itself (`quant.screens.momentum_breakout`, one
implementation of the rules): a name is set up on bar t - 1 when the screen lists it that day among the
day's universe members (momentum rank, trend, near the high, tightening range, enough history). The
screen's price and traded-value filters are not applied: a backtest's universe is its filter. The name is
entered on bar t when it breaks out: close_t above the highest high of the `base_days` bars before t, on
volume_t >= volume_mult x the average volume of the 50 bars before t. A position is left after a close
below the ATR stop set at the breakout or below the trailing average; at most `max_positions` at a time.

The parameters are flat scalars (the strategy form and the API take one value per field);
`BreakoutParams.screen_params()` builds the screen's parameters from them and `params_from_screen` maps a
screen's parameters to them, so a scan and its backtest ask the same questions.
"""
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..screens import Filters, MomentumBreakout, UniversePanel, momentum_breakout
from .common import rolling_mean

VOLUME_DAYS = 50
_SCREEN = MomentumBreakout()  # the screen's defaults are the strategy's
_HELP = {name: field.description for name, field in MomentumBreakout.model_fields.items()}


class BreakoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The setup: the rule parameters of quant.screens.MomentumBreakout, one scalar each.
    return_windows: str = Field(",".join(map(str, _SCREEN.return_windows)), max_length=64,
                                description=_HELP["return_windows"] + ", separated by commas")
    top_percent: float = Field(_SCREEN.top_percent, gt=0, le=100, description=_HELP["top_percent"])
    require: Literal["any", "all"] = Field(_SCREEN.require, description=_HELP["require"])
    ma_fast: int = Field(_SCREEN.ma_windows[0], ge=1, description="Trend: close > this moving average > ma_mid")
    ma_mid: int = Field(_SCREEN.ma_windows[1], ge=1, description="Trend: ma_fast > this moving average > ma_slow")
    ma_slow: int = Field(_SCREEN.ma_windows[2], ge=1, description="Trend: the slowest moving average; each one rising")
    rising_over: int = Field(_SCREEN.rising_over, ge=1, description=_HELP["rising_over"])
    high_window: int = Field(_SCREEN.high_window, ge=1, description=_HELP["high_window"])
    max_below_high: float = Field(_SCREEN.max_below_high, ge=0, le=1, description=_HELP["max_below_high"])
    atr_short: int = Field(_SCREEN.atr_short, ge=1, description=_HELP["atr_short"])
    atr_long: int = Field(_SCREEN.atr_long, ge=1, description=_HELP["atr_long"])
    max_atr_ratio: float = Field(_SCREEN.max_atr_ratio, gt=0, description=_HELP["max_atr_ratio"])
    # The trigger, the stop and the book.
    base_days: int = Field(20, ge=3, le=120, description="Breakout: close above the highest high of this many bars before")
    volume_mult: float = Field(1.5, ge=0.0, le=10.0, description="Breakout volume at least this x the 50-bar average")
    atr_days: int = Field(14, ge=2, le=100, description="Bars of the average true range of the stop")
    atr_mult: float = Field(2.0, ge=0.25, le=10.0, description="Stop = breakout close - atr_mult x ATR")
    trail_ma: int = Field(20, ge=2, le=200, description="Exit after a close below this moving average")
    max_positions: int = Field(10, ge=1, le=100, description="Positions at once, each 1 / max_positions of equity")

    @field_validator("return_windows", mode="before")
    @classmethod
    def windows_text(cls, value):
        """'21, 63,126' or [21, 63, 126] -> '21,63,126'."""
        parts = list(value) if isinstance(value, (list, tuple)) else str(value).replace(" ", "").split(",")
        try:
            windows = [int(part) for part in parts if part != ""]
        except (TypeError, ValueError):
            windows = []
        if not windows or min(windows) < 1:
            raise ValueError(f"give whole numbers of sessions separated by commas, e.g. 21,63,126; got {value!r}")
        return ",".join(map(str, windows))

    @model_validator(mode="after")
    def screen_accepts(self):
        if not self.ma_fast < self.ma_mid < self.ma_slow:
            raise ValueError(f"ma_fast < ma_mid < ma_slow, got {self.ma_fast}, {self.ma_mid}, {self.ma_slow}")
        if self.atr_short >= self.atr_long:
            raise ValueError(f"atr_short ({self.atr_short}) must be shorter than atr_long ({self.atr_long})")
        try:
            self.screen_params()
        except ValidationError as exc:  # anything else the screen refuses, in its words
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self

    def screen_params(self) -> MomentumBreakout:
        """The scanner's momentum-breakout parameters these set up names with (no price or traded-value filter)."""
        return MomentumBreakout(
            filters=Filters(), return_windows=tuple(int(w) for w in self.return_windows.split(",")),
            top_percent=self.top_percent, require=self.require, ma_windows=(self.ma_fast, self.ma_mid, self.ma_slow),
            rising_over=self.rising_over, high_window=self.high_window, max_below_high=self.max_below_high,
            atr_short=self.atr_short, atr_long=self.atr_long, max_atr_ratio=self.max_atr_ratio)


def params_from_screen(screen: MomentumBreakout, **trigger) -> BreakoutParams:
    """The strategy's parameters that set names up exactly as `screen` does (its filters aside).

    trigger: base_days, volume_mult, atr_days, atr_mult, trail_ma, max_positions (their defaults otherwise).
    """
    fast, mid, slow = screen.ma_windows
    return BreakoutParams(
        return_windows=list(screen.return_windows), top_percent=screen.top_percent, require=screen.require,
        ma_fast=fast, ma_mid=mid, ma_slow=slow, rising_over=screen.rising_over, high_window=screen.high_window,
        max_below_high=screen.max_below_high, atr_short=screen.atr_short, atr_long=screen.atr_long,
        max_atr_ratio=screen.max_atr_ratio, **trigger)


def breakout_setups(market, params: BreakoutParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(setup, score), dates x names: where the scanner's momentum-breakout screen lists a name, and its score.

    The screen runs on the market's adjusted close/high/low and volume with its point-in-time members, so
    the momentum rank is taken among each day's members. score: the screen's (the mean percentile of
    the returns in the universe), NaN without one.
    """
    panel = UniversePanel.build(close=market.close, high=market.high, low=market.low, volume=market.volume,
                                members=market.member_mask())
    result = momentum_breakout(panel, params.screen_params())
    return result.hit_mask(), result.score


def breakout_bars(close: pd.DataFrame, high: pd.DataFrame, volume: pd.DataFrame, params: BreakoutParams) -> pd.DataFrame:
    """True on bar t where close_t > the highest high of the `base_days` bars before t and volume_t >=
    volume_mult x the mean volume of the 50 bars before t. A missing value in either window makes it False."""
    base_high = high.shift(1).rolling(params.base_days, min_periods=params.base_days).max()
    average_volume = volume.shift(1).rolling(VOLUME_DAYS, min_periods=VOLUME_DAYS).mean()
    return (close > base_high) & (volume >= params.volume_mult * average_volume)


def average_true_range(close, high, low, days):
    """Mean of the true range max(high - low, |high - previous close|, |low - previous close|) over `days`."""
    previous = close.shift(1)
    ranges = np.fmax(high - low, np.fmax((high - previous).abs(), (low - previous).abs()))
    return rolling_mean(ranges, days)


def breakout(market, params: BreakoutParams) -> pd.DataFrame:
    """Entries on bar t for names set up on t - 1 that break out on t and are members on t; target
    1 / max_positions per position, 0 on the exit decision.

    The stop is fixed on the breakout bar: its close - atr_mult x ATR. A position is closed after the
    first later close below the stop or below the trailing average. When more names break out than
    slots are free, the best screen scores on t - 1 win (then the column order). A name can re-enter
    only after its exit decision. The loop runs over the bars that have an entry, not over every bar.
    """
    close, high, low, volume = market.close, market.high, market.low, market.volume
    setups, score = breakout_setups(market, params)
    entries_at = (setups.shift(1, fill_value=False) & breakout_bars(close, high, volume, params)
                  & market.member_mask()).to_numpy()
    strength = score.shift(1).to_numpy()
    stop_at = (close - params.atr_mult * average_true_range(close, high, low, params.atr_days)).to_numpy()
    prices = close.to_numpy()
    below_trail = (close < rolling_mean(close, params.trail_ma)).to_numpy()
    n_bars, n_names = prices.shape
    exit_bar = np.full(n_names, -1)     # the exit decision bar of each name's latest position
    entered_bar = np.full(n_names, -1)
    entries, exits = [], []
    for t in np.flatnonzero(entries_at.any(axis=1)):
        holding = (entered_bar >= 0) & (entered_bar < t) & (exit_bar > t)
        free = params.max_positions - int(holding.sum())
        candidates = np.flatnonzero(entries_at[t] & ~holding & (exit_bar < t) & np.isfinite(stop_at[t]))
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
