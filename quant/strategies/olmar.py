"""OLMAR: on-line moving-average reversion (Li and Hoi, ICML 2012, Algorithm 1 with Algorithm 2's prediction).

After the close of period t, with prices p up to t:
    predicted relatives   x~ = MA_w(p)_t / p_t   (each name's w-bar average over its price)
    x_bar = mean(x~),     lambda = max(0, (epsilon - b_t . x~) / ||x~ - x_bar||^2)   (0 if the norm is 0)
    b_{t+1} = projection onto the simplex of b_t + lambda (x~ - x_bar)
b_{t+1} is dated t (decided on t's close) and earns the *next* period's relatives x_{t+1} = p_{t+1} / p_t:
the engine executes it on a later bar, never against x_t. Nothing is decided until w prices exist; the
first update starts from the uniform portfolio. b_t in the update is the previous decision, as in the
paper (not its drift).
"""
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


class OlmarParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: int = Field(5, ge=2, le=60, description="w: bars of the moving average that predicts the price")
    epsilon: float = Field(10.0, ge=1.0, le=100.0, description="Reversion threshold: how far to move toward "
                                                              "the predicted winners")


def simplex_projection(v: np.ndarray) -> np.ndarray:
    """The point of the probability simplex nearest to v (Euclidean; Duchi et al. 2008, sort-based)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    rho = np.flatnonzero(u - cumulative / np.arange(1, len(v) + 1) > 0)[-1]
    theta = cumulative[rho] / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


def olmar_step(b: np.ndarray, predicted: np.ndarray, epsilon: float) -> np.ndarray:
    """One OLMAR update of portfolio b toward the predicted relatives."""
    mean = predicted.mean()
    deviation = predicted - mean
    norm = float(deviation @ deviation)
    step = 0.0 if norm == 0 else max(0.0, (epsilon - float(b @ predicted)) / norm)
    return simplex_projection(b + step * deviation)


def olmar(market, params: OlmarParams) -> pd.DataFrame:
    """A decision on every bar from the first one with prices: b_{t+1} over the names tradable at t.

    A name is tradable at t when it is a member with w valid prices up to t; the others get 0 and the
    update runs over the tradable ones (their part of b renormalised). The loop runs over bars because
    each portfolio depends on the one before.
    """
    close = market.close
    prices = close.to_numpy(dtype="float64")
    average = close.rolling(params.window, min_periods=params.window).mean().to_numpy()
    members = market.member_mask().to_numpy()
    n_bars, n_names = prices.shape
    out = np.full((n_bars, n_names), np.nan)
    b = np.zeros(n_names)
    for t in range(n_bars):
        ready = members[t] & np.isfinite(average[t]) & (prices[t] > 0)
        if not ready.any():
            continue
        held = b[ready]
        held = held / held.sum() if held.sum() > 0 else np.full(ready.sum(), 1.0 / ready.sum())
        new = np.zeros(n_names)
        new[ready] = olmar_step(held, average[t, ready] / prices[t, ready], params.epsilon)
        out[t] = new
        b = new
    rows = np.isfinite(out).any(axis=1)
    return pd.DataFrame(out[rows], index=close.index[rows], columns=close.columns)
