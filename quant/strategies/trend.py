"""Moving-average trend following: crossover (fast over slow) or filter (close over its average), long/flat."""
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import rolling_mean, window_mean


class MovingAverageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["crossover", "filter"] = Field(
        "crossover", description="crossover: fast average above slow; filter: close above the slow average")
    fast: int = Field(50, ge=2, le=250, description="Bars of the fast average (crossover only)")
    slow: int = Field(200, ge=5, le=400, description="Bars of the slow average")

    @model_validator(mode="after")
    def _fast_below_slow(self):
        if self.mode == "crossover" and self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


def trend_signal(close: pd.DataFrame, params: MovingAverageParams) -> pd.DataFrame:
    """True where the trend is up on that bar's close (NaN averages: False)."""
    slow = rolling_mean(close, params.slow)
    fast = close if params.mode == "filter" else rolling_mean(close, params.fast)
    return fast > slow  # a NaN average compares False: no signal during the warm-up


def moving_average(market, params: MovingAverageParams) -> pd.DataFrame:
    """Long/flat per name: a decision only on the bars where a name's signal (and membership) changes.

    A name entering is bought with an equal slot, 1 / (members that bar); a name leaving is sold to 0;
    the others are left as they are (NaN), so positions drift and nothing is re-weighted daily.
    """
    close = market.close
    members = market.member_mask()
    on = (trend_signal(close, params) & members & close.notna()).to_numpy()
    before = np.vstack([np.zeros((1, on.shape[1]), dtype=bool), on[:-1]])
    enter, leave = on & ~before, ~on & before
    # A name that stops being a member or loses its price is sold; one without a price cannot be.
    count = members.to_numpy().sum(axis=1, keepdims=True)
    slot = np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0)
    weights = np.where(enter, slot, np.where(leave, 0.0, np.nan))
    rows = (enter | leave).any(axis=1)
    return pd.DataFrame(weights[rows], index=close.index[rows], columns=close.columns)


def crossover_positions(close: np.ndarray, pairs, *, mode: str = "crossover", delay: int = 1) -> np.ndarray:
    """Positions in force at the end of each bar for many (fast, slow) pairs on one instrument at once.

    close: 1-D closes without NaN. pairs: (fast, slow) window pairs (fast ignored for mode "filter").
    Returns bars x pairs booleans: the signal of bar t (trend_signal's rule) held from bar t + delay,
    i.e. exactly what `moving_average` + quant.backtest.run would hold. Averages come from running sums,
    once per distinct window (common.window_mean, as the strategy computes them).
    """
    close = np.asarray(close, dtype="float64")
    n = len(close)
    averages = {}

    def average(window):
        if window not in averages:
            averages[window] = window_mean(close, window)
        return averages[window]

    held = np.zeros((n, len(pairs)), dtype=bool, order="F")  # column-major, as long_flat_returns reads it
    # One broadcast comparison per distinct fast window (a grid of pairs shares them).
    by_fast = {}
    for j, (fast, slow) in enumerate(pairs):
        by_fast.setdefault(None if mode == "filter" else fast, []).append((j, slow))
    for fast, members in by_fast.items():
        columns = [j for j, _ in members]
        quick = close if fast is None else average(fast)
        slow = np.column_stack([average(s) for _, s in members])
        with np.errstate(invalid="ignore"):
            held[delay:, columns] = quick[:-delay, None] > slow[:-delay]
    return held
